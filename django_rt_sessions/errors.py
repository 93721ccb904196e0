"""Stable error codes (docs/http-api.md#errors) and the exception the issuing service raises for each."""

from __future__ import annotations

from typing import Any

# code -> (HTTP status, audit outcome, default message shown to the requesting user)
ERRORS: dict[str, tuple[int, str, str]] = {
    "invalid": (400, "invalid", "The request is invalid."),
    "override_not_allowed": (400, "invalid", "This preset does not let you change that setting."),
    "preset_forbidden": (403, "forbidden", "You are not allowed to use this preset."),
    "quota_exceeded": (429, "rate_limited", "You have used today's quota for this preset."),
    "preset_not_found": (404, "not_found", "No such preset."),
    "rate_limited": (429, "rate_limited", "Too many token requests; try again later."),
    "rate_limit_unavailable": (
        503,
        "rate_limit_unavailable",
        "Rate limits cannot be checked right now; try again shortly.",
    ),
    "service_unavailable": (
        503,
        "service_unavailable",
        "The service is temporarily unavailable; try again shortly.",
    ),
    "upstream_error": (502, "upstream_error", "The transcription service could not create a session."),
    "upstream_unavailable": (
        503,
        "upstream_unavailable",
        "The transcription service is unavailable; try again later.",
    ),
    "upstream_timeout": (504, "upstream_timeout", "The transcription service did not answer in time."),
}


class IssueError(Exception):
    """A refusal with a stable code; `detail` is safe to show to the requesting user."""

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        retry_after: int | None = None,
        status: int | None = None,
        error_code: str = "",
        error_message: str = "",
    ) -> None:
        # Codes outside ERRORS come from a site's POLICY: a refusal (403 unless it says otherwise).
        default_status, outcome, default_detail = ERRORS.get(code, (403, "forbidden", "Request denied."))
        status = status or default_status
        self.code = code
        self.status = status
        self.outcome = outcome
        self.detail = detail or default_detail
        self.errors = errors
        self.retry_after = retry_after
        # For the audit row only (staff read it; the user sees `code` and `detail`): a finer code and text.
        self.error_code = error_code
        self.error_message = error_message
        self.token_request: Any = None  # the audit row, once the issuing service has recorded it
        super().__init__(f"{code}: {self.detail}")

    def as_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body
