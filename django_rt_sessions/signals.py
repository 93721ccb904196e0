"""Signals sent by the issuing service, after the audit row is committed, and by the relay.

Receivers run in the request, so keep them quick (queue slow work). An exception in a receiver is
logged and does not change the answer the user gets (the signals are sent with `send_robust`).
"""

from django.dispatch import Signal

# Sent when a token request reaches the issuing service, before any check. To refuse or adjust a request,
# use the POLICY setting instead: receivers cannot change the outcome.
# Arguments: sender=TokenRequest, user, payload (the decoded request body: a dict or anything the client
# sent; None when the body could not be decoded), request (the HttpRequest, or None outside HTTP).
token_requested = Signal()

# Sent after an ephemeral key was issued and its audit row saved.
# Arguments: sender=TokenRequest, token_request (the audit row), user, preset, request.
token_issued = Signal()

# Sent after a request was refused (any code) and its audit row saved.
# Arguments: sender=TokenRequest, token_request, user, code (the error code of docs/http-api.md),
# status (HTTP status), request.
token_denied = Signal()

# Sent when a relayed session's row is written, before its upstream session opens (docs/relay.md).
# Arguments: sender=RelaySession, relay_session (the row).
relay_session_started = Signal()

# Sent once a relayed session's row is closed, whatever ended it (`end_reason`), by the relay process or by
# the sweep (`relay_lost`). Arguments: sender=RelaySession, relay_session (the row, final counters).
relay_session_ended = Signal()
