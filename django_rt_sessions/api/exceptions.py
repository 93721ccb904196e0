"""The JSON error envelope `{"detail", "code"[, "errors"]}` for every error the app's views answer.

The views return it through their own exception handler, so a site never has to change DRF's global
EXCEPTION_HANDLER (and the site's own handler never reshapes our errors).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
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
    if isinstance(exc, ImproperlyConfigured):
        # Outside the issuing service (which answers and audits its own): a setting the view needs.
        logger.error("django-rt-sessions is misconfigured: %s", exc)
        return error_response(IssueError("misconfigured"))
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
    return Response(_drf_body(exc), status=exc.status_code, headers=headers)


def _drf_body(exc: exceptions.APIException) -> dict[str, Any]:
    """DRF's own exceptions in the envelope: DRF's status and code, plain strings.

    An authentication class may raise with a dict (djangorestframework-simplejwt's InvalidToken:
    `{"detail", "code", "messages"}`): its own detail and code are kept, so a single-page app sees
    `token_not_valid` and refreshes its token instead of reading field errors.
    """
    detail = exc.detail
    if isinstance(detail, dict) and "detail" in detail:
        return {"detail": _plain(detail["detail"]), "code": str(detail.get("code") or exc.default_code)}
    if isinstance(detail, (dict, list)):  # field errors (a 400 of DRF's own, or of a site's class)
        return {"detail": "The request is invalid.", "code": "invalid", "errors": _as_errors(detail)}
    return {"detail": _plain(detail), "code": str(getattr(detail, "code", None) or exc.default_code)}


def _plain(value: Any) -> str:
    """Text from a DRF detail of any shape, without Python reprs (ErrorDetail(string=…) and the like)."""
    if isinstance(value, dict):
        inner = value.get("message", value.get("detail"))
        return _plain(inner) if inner is not None else " ".join(_plain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_plain(item) for item in value)
    return str(value)


def _as_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(k): [_plain(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    return {"non_field_errors": [_plain(m) for m in detail]}
