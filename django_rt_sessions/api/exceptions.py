"""The JSON error envelope `{"detail", "code"[, "errors"]}` for every error the app's views answer.

The views return it through their own exception handler, so a site never has to change DRF's global
EXCEPTION_HANDLER (and the site's own handler never reshapes our errors).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from ..errors import DATABASE_DOWN_ERRORS, IssueError

logger = logging.getLogger("django_rt_sessions.views")


def error_response(error: IssueError) -> Response:
    headers = {"Cache-Control": "no-store"}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return Response(error.as_body(), status=error.status, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, IssueError):
        return error_response(exc)
    if isinstance(exc, DATABASE_DOWN_ERRORS):
        # The database is down or restarting before the issuing service ran (authentication needs it);
        # the service answers its own outages. The connection is discarded at the end of the request and
        # the next one reconnects.
        logger.error("Database unavailable during a request: %s", type(exc).__name__)
        return error_response(IssueError("service_unavailable"))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django answer 500 and report it
    headers = {"Cache-Control": "no-store"}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    body: dict[str, Any]
    if isinstance(exc.detail, (dict, list)):
        body = {"detail": "The request is invalid.", "code": "invalid", "errors": _as_errors(exc.detail)}
    else:
        body = {"detail": str(exc.detail), "code": str(exc.get_codes())}
    return Response(body, status=exc.status_code, headers=headers)


def _as_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    return {"non_field_errors": [str(m) for m in detail]}
