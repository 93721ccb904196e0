"""The interface every upstream adapter implements, and the call/mapping logic they share.

An adapter only knows its shape: the URL path, the auth header, how to turn a preset's session (the beta
endpoint's vocabulary) into its request body, how to turn its answer back into the beta endpoint's "Returns"
shape, and what it cannot send. Transport, retries, error parsing and the mapping onto the error codes of
docs/http-api.md live here, once.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
import requests.auth
from django.views.decorators.debug import sensitive_variables

from ..conf import is_loopback
from ..errors import IssueError
from ..redaction import redact
from ..sessions.catalog import transports_for
from ..sessions.fields import model_of, sent_tokens
from . import transport

logger = logging.getLogger("django_rt_sessions.upstream")


@dataclass(frozen=True)
class UpstreamConfig:
    base_url: str
    api_key: str | None = field(repr=False)  # kept out of reprs: they land in tracebacks and error reports
    connect_timeout: float
    read_timeout: float
    max_retries: int
    organization: str | None = None
    project: str | None = None
    api_key_source: str = "RT_SESSIONS['API_KEY']"  # where the key came from, for log messages


def account_headers(config: UpstreamConfig, safety_identifier: str | None = None) -> dict[str, str]:
    """The headers that bill and attribute a request to the site's OpenAI organization, project and user
    (the token POST and the relay's upstream socket alike); never the key."""
    headers: dict[str, str] = {}
    if config.organization:
        headers["OpenAI-Organization"] = config.organization
    if config.project:
        headers["OpenAI-Project"] = config.project
    if safety_identifier:
        headers["OpenAI-Safety-Identifier"] = safety_identifier
    return headers


@dataclass
class UpstreamSession:
    """A successful answer, normalised to the beta endpoint's "Returns" shape."""

    body: dict[str, Any] = field(repr=False)  # holds the ephemeral key
    secret: str = field(repr=False)
    expires_at: int
    session_id: str
    status: int
    request_id: str
    elapsed_ms: int


class UpstreamFailure(IssueError):
    """An upstream failure mapped onto an error code, with what staff need to investigate it.

    `detail` (shown to the user) stays the generic text of the code; `error_message` is for the audit.
    """

    def __init__(
        self,
        code: str,
        *,
        upstream_status: int | None = None,
        error_code: str = "",
        error_message: str = "",
        request_id: str = "",
        elapsed_ms: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(code, retry_after=retry_after, error_code=error_code, error_message=error_message)
        self.upstream_status = upstream_status
        self.request_id = request_id
        self.elapsed_ms = elapsed_ms


class Upstream:
    """Base class of the adapters. Subclasses set the class attributes and the two translations."""

    name: ClassVar[str]
    api: ClassVar[str]  # "ga" or "beta": which connection flow a browser follows
    path: ClassVar[str]
    webrtc_path: ClassVar[str] = "/realtime/calls"  # where a browser posts its SDP offer
    # What this shape cannot send: session field paths, and `path=value` for single values
    # (see sessions.fields.sent_tokens). The validator refuses them at save and import while this
    # upstream is configured; a stored preset that holds one answers 503 unsupported_by_upstream.
    cannot_send: ClassVar[frozenset[str]] = frozenset()
    # The relay (docs/relay.md): whether its upstream socket is opened with a key minted server-side
    # (`create_session`) rather than the API key itself.
    relay_mints_key: ClassVar[bool] = False

    def unsupported(self, session: Mapping[str, Any]) -> list[str]:
        """What of `session` (a validated preset session) this upstream cannot send, in table order."""
        return [token for token in sent_tokens(session) if token in self.cannot_send]

    def unsupported_message(self, token: str) -> str:
        """The field error for one `unsupported()` token."""
        path, _, value = token.partition("=")
        what = f"the value {value!r}" if value else f"the field {path.rsplit('.', 1)[-1]!r}"
        return f"The {self.name} upstream (RT_SESSIONS['UPSTREAM']) cannot send {what}."

    def build_body(self, session: dict[str, Any], expires_after_seconds: int) -> dict[str, Any]:
        """The request body for a validated session (beta vocabulary) it can send."""
        raise NotImplementedError

    def normalise(self, data: Any, sent_session: dict[str, Any]) -> dict[str, Any]:
        """Turn a success answer into the beta endpoint's "Returns" shape; raise ValueError if unusable."""
        raise NotImplementedError

    @sensitive_variables("api_key")
    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def url(self, base_url: str) -> str:
        return f"{base_url}{self.path}"

    def connect_info(self, base_url: str, session: Mapping[str, Any]) -> dict[str, Any]:
        """Where the browser connects with the ephemeral key (returned to it as `connect`).

        `transports` lists what the session's model supports, preferred first. An upstream on loopback (the
        local stand-in) gets WebSocket first: browsers reach a loopback WebRTC peer only when started with a
        flag, and a page whose "auto" transport picked WebRTC would fail there.
        """
        ws_base = re.sub(r"^http", "ws", base_url)
        transports = list(transports_for(model_of(session)))
        if is_loopback(urlsplit(base_url).hostname) and "websocket" in transports:
            transports = ["websocket", *(t for t in transports if t != "websocket")]
        return {
            "api": self.api,
            "webrtc_url": f"{base_url}{self.webrtc_path}",
            "websocket_url": f"{ws_base}/realtime?intent=transcription",
            "transports": transports,
        }

    def check_config(self, config: UpstreamConfig) -> str | None:
        """A configuration problem that makes calling pointless, as a message for the log, or None."""
        return None

    @sensitive_variables("config", "headers", "response", "normalised", "secret")
    def create_session(
        self,
        body: dict[str, Any],
        session: dict[str, Any],
        config: UpstreamConfig,
        *,
        safety_identifier: str | None = None,
    ) -> UpstreamSession:
        """POST the body upstream; return the normalised session or raise UpstreamFailure."""
        if not config.api_key:
            logger.error("No OpenAI API key is configured: set %s.", config.api_key_source)
            raise UpstreamFailure(
                "upstream_unavailable", error_code="no_api_key", error_message="No API key configured."
            )
        problem = self.check_config(config)
        if problem:
            logger.error(problem)
            raise UpstreamFailure("upstream_unavailable", error_code="misconfigured", error_message=problem)

        # The key is added by an auth object at send time, so no local variable of this frame holds it
        # (Django's DEBUG error page shows locals whatever sensitive_variables says).
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **account_headers(config, safety_identifier),
        }

        started = time.monotonic()
        try:
            url = self.url(config.base_url)
            response = transport.get_session(config.max_retries).post(
                url,
                proxies=transport.proxies_for(url),
                json=body,
                headers=headers,
                auth=_KeyAuth(self, config),
                timeout=(config.connect_timeout, config.read_timeout),
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise self._transport_failure(
                "upstream_unavailable", "connect_timeout", exc, started, config
            ) from None
        except requests.exceptions.Timeout as exc:
            raise self._transport_failure("upstream_timeout", "read_timeout", exc, started, config) from None
        except requests.exceptions.RequestException as exc:
            raise self._transport_failure(
                "upstream_unavailable", "connection_error", exc, started, config
            ) from None
        elapsed_ms = int((time.monotonic() - started) * 1000)
        request_id = response.headers.get("x-request-id", "")[:128]

        if response.status_code >= 400 or response.status_code < 200:
            raise self._status_failure(response, request_id, elapsed_ms, config)
        try:
            normalised = self.normalise(response.json(), session)
            secret = normalised["client_secret"]["value"]
            expires_at = normalised["client_secret"]["expires_at"]
            if not isinstance(secret, str) or not secret or not isinstance(expires_at, int):
                raise ValueError("client secret missing")
            # An adapter's answer must serialise: failing later, in the renderer, would put the key in a
            # 500's error report.
            json.dumps(normalised)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning(
                "Upstream %s answered %s with an unusable body (%s); request id %s",
                self.name,
                response.status_code,
                type(exc).__name__,
                request_id or "-",
            )
            raise UpstreamFailure(
                "upstream_error",
                upstream_status=response.status_code,
                error_code="invalid_response",
                error_message="The upstream answered with a body that holds no usable client secret.",
                request_id=request_id,
                elapsed_ms=elapsed_ms,
            ) from None
        return UpstreamSession(
            body=normalised,
            secret=secret,
            expires_at=expires_at,
            session_id=str(normalised.get("id") or "")[:128],
            status=response.status_code,
            request_id=request_id,
            elapsed_ms=elapsed_ms,
        )

    def _transport_failure(
        self, code: str, error_code: str, exc: Exception, started: float, config: UpstreamConfig
    ) -> UpstreamFailure:
        elapsed_ms = int((time.monotonic() - started) * 1000)
        # The exception text names the URL and the low-level error, never headers or body.
        message = redact(f"{type(exc).__name__}: {exc}", config.api_key)
        logger.warning("Upstream %s unreachable after %d ms: %s", self.name, elapsed_ms, message)
        return UpstreamFailure(code, error_code=error_code, error_message=message, elapsed_ms=elapsed_ms)

    def _status_failure(
        self, response: requests.Response, request_id: str, elapsed_ms: int, config: UpstreamConfig
    ) -> UpstreamFailure:
        error_code, message = parse_error(response)
        error_code = error_code or f"http_{response.status_code}"
        message = redact(message, config.api_key)
        retry_after = None
        if response.status_code == 429:
            code = "upstream_unavailable"
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        else:
            code = "upstream_error"
        if error_code == "beta_api_shape_disabled":
            logger.error(
                "The upstream refused the beta transcription_sessions endpoint (beta_api_shape_disabled): "
                "set RT_SESSIONS['UPSTREAM'] = 'openai' to use POST /v1/realtime/client_secrets."
            )
        elif response.status_code in (401, 403):
            logger.error(
                "Upstream %s refused our credentials (%s %s): check %s; request id %s",
                self.name,
                response.status_code,
                error_code,
                config.api_key_source,
                request_id or "-",
            )
        else:
            logger.warning(
                "Upstream %s answered %s (%s); request id %s",
                self.name,
                response.status_code,
                error_code,
                request_id or "-",
            )
        return UpstreamFailure(
            code,
            upstream_status=response.status_code,
            error_code=error_code,
            error_message=message,
            request_id=request_id,
            elapsed_ms=elapsed_ms,
            retry_after=retry_after,
        )


class _KeyAuth(requests.auth.AuthBase):
    """Adds the adapter's auth header to the outgoing request; its repr never shows the key."""

    def __init__(self, upstream: Upstream, config: UpstreamConfig) -> None:
        self._upstream = upstream
        self._config = config

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._upstream.auth_headers(self._config.api_key or ""))
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self._upstream.name}>"


def parse_error(response: requests.Response) -> tuple[str, str]:
    """OpenAI's `{"error": {"code", "message", "type"}}`, as (code, message); tolerant of anything else."""
    try:
        data = response.json()
    except ValueError:
        return "", (response.text or response.reason or "")[:500]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or ""
        return str(code), str(error.get("message") or "")
    if isinstance(error, str):
        return "", error
    return "", str(data)[:500]


def parse_retry_after(value: str | None) -> int | None:
    """Retry-After in whole seconds (delta-seconds only; an HTTP date is rare from APIs)."""
    if not value:
        return None
    try:
        return max(1, int(float(value) + 0.999))
    except ValueError:
        return None
