"""Issuing: from a request's body to an ephemeral key (or a refusal) and its one audit row.

`service.py` runs the steps (body → preset → access → plan → limits → upstream → audit); `payload.py` reads
the body, `planning.py` builds what is sent upstream, `throttling.py` and `quotas.py` count. The public
names are re-exported here: `from django_rt_sessions.issuing import IssueContext, issue_session`.
"""

from ..errors import IssueError
from .service import IssueContext, IssuedSession, fingerprint, issue_from_body, issue_session, prepare

__all__ = [
    "IssueContext",
    "IssueError",
    "IssuedSession",
    "fingerprint",
    "issue_from_body",
    "issue_session",
    "prepare",
]
