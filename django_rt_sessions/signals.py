"""Signals sent by the issuing service, after the audit row is committed.

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
