"""OpenAPI 3 description of the app's two endpoints (docs/http-api.md), for drf-spectacular (the ``openapi``
extra).

Importing this module registers drf-spectacular extensions; ``AppConfig.ready()`` imports it only when
drf-spectacular is installed, so the app works without it and ``api/views.py`` carries no schema decorators:

* two ``OpenApiViewExtension``\\ s replace the views, for schema generation only, with subclasses annotated by
  ``extend_schema`` (request body, every response, the ``Cache-Control`` and ``Retry-After`` headers);
* ``OpenApiSerializerExtension``\\ s give the marker serializers below JSON schemas generated from the
  description of the session fields (``sessions.fields.FIELDS``), so the
  components say exactly what the validators accept (enums, patterns, lengths, nullability, no unknown
  keys) rather than what DRF fields can express.

The error codes per status come from ``errors.ERRORS`` (the app's own codes) plus the DRF codes its views
can answer, so a new code added to ``ERRORS`` shows up in the schema under its status.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, cast

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiViewExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from ..errors import ERRORS, OUTAGE_RETRY_AFTER
from ..issuing.payload import MAX_BODY_BYTES
from ..presets.validation import (
    MAX_EXPIRES_AFTER,
    MIN_EXPIRES_AFTER,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    TITLE_MAX_LENGTH,
)
from ..sessions.docs import field_notes
from ..sessions.fields import (
    CLIENT_TURNS_FIELDS,
    FIELDS,
    OVERRIDABLE_FIELDS,
    RELAY_FIELDS,
    SessionField,
    index,
)
from ..sessions.rules import Rule

__all__ = ["CREATE_RESPONSES", "ERROR_CODES", "ERROR_COMPONENTS", "LIST_RESPONSES", "TAG", "error_schema"]

TAG = "rt-sessions"
PRESET_NAME_PATTERN = f"^{NAME_PATTERN}$"

# Authentication failures keep the status and code of the site's DRF authentication class, whatever it is.
AUTHENTICATION_STATUSES = (401, 403)
# DRF's own codes that the views' exception handler passes through, by status.
_DRF_CODES: dict[int, tuple[str, ...]] = {
    401: ("not_authenticated", "authentication_failed"),  # token/JWT sites (WWW-Authenticate set)
    403: ("not_authenticated", "authentication_failed", "permission_denied"),  # session auth, CSRF
    405: ("method_not_allowed",),
    406: ("not_acceptable",),  # an Accept header that excludes JSON
    429: ("throttled",),  # only if the site adds DRF throttles of its own
}


def _codes_by_status() -> dict[int, tuple[str, ...]]:
    codes: dict[int, list[str]] = {}
    for code, spec in ERRORS.items():
        status = spec.status
        codes.setdefault(status, []).append(code)
    for status, drf_codes in _DRF_CODES.items():
        codes.setdefault(status, []).extend(c for c in drf_codes if c not in codes.get(status, []))
    return {status: tuple(sorted(values)) for status, values in sorted(codes.items())}


#: status -> every `code` an error body with that status can carry.
ERROR_CODES: dict[int, tuple[str, ...]] = _codes_by_status()

# status -> (component name, description)
_ERROR_INFO: dict[int, tuple[str, str]] = {
    400: (
        "InvalidRequestError",
        "`invalid`: malformed JSON, not an object, unknown field, bad value, body over "
        f"{MAX_BODY_BYTES} bytes, form-encoded body. `override_not_allowed`: a field the preset does not "
        "list in `overridable`. `errors` names the fields.",
    ),
    401: (
        "UnauthorizedError",
        "Not logged in, or credentials refused, on sites whose first DRF authentication class sends "
        "`WWW-Authenticate` (token, JWT): `not_authenticated`, `authentication_failed`, or the "
        "authentication class's own code (djangorestframework-simplejwt: `token_not_valid`).",
    ),
    403: (
        "ForbiddenError",
        "`not_authenticated` / `permission_denied`: not logged in, CSRF token missing (session "
        "authentication). `preset_forbidden`: the user is in none of the preset's groups.",
    ),
    404: ("PresetNotFoundError", "`preset_not_found`: unknown or inactive preset, or no default preset."),
    405: ("MethodNotAllowedError", "`method_not_allowed`: wrong HTTP method."),
    406: ("NotAcceptableError", "`not_acceptable`: the `Accept` header excludes application/json."),
    429: (
        "RateLimitedError",
        "`rate_limited`: the user, client IP or preset limit is hit. `quota_exceeded`: the user's daily "
        "quota for this preset is used up (sessions, or a relay preset's audio minutes). `throttled`: a "
        "DRF throttle the site added. `Retry-After` gives the seconds until the window (or the day) ends.",
    ),
    502: (
        "UpstreamError",
        "`upstream_error`: the upstream answered with an error (4xx, or 5xx after retries) or an unusable "
        "body.",
    ),
    503: (
        "ServiceUnavailableError",
        "`upstream_unavailable`: the upstream rate-limited us (its `Retry-After` is passed on), could not be "
        "reached, or no API key is configured. `rate_limit_unavailable`: the rate-limit cache is down. "
        "`service_unavailable`: the database is down. `misconfigured`: the site's settings have an error "
        "that `manage.py check` reports.",
    ),
    504: ("UpstreamTimeoutError", "`upstream_timeout`: the upstream did not answer in time."),
}
# Every status must be described; a status added to ERRORS without a description fails loudly here.
assert set(ERROR_CODES) <= set(_ERROR_INFO), sorted(set(ERROR_CODES) - set(_ERROR_INFO))

#: status -> component name of its error body.
ERROR_COMPONENTS: dict[int, str] = {status: _ERROR_INFO[status][0] for status in ERROR_CODES}

# ------------------------------------------------------------------------------------------- schemas
# The session and request schemas are generated from the description of the session fields
# (sessions.fields.FIELDS): the same table the validator, the admin form and the docs read.


def _value_schema(rule: Rule) -> dict[str, Any]:
    if rule.kind == "boolean":
        return {"type": "boolean"}
    if rule.kind == "choice":
        return {"type": "string", "enum": list(rule.values)}
    if rule.kind == "text":
        schema: dict[str, Any] = {"type": "string"}
        if rule.min_length:
            schema["minLength"] = rule.min_length
        if rule.max_length is not None:
            schema["maxLength"] = rule.max_length
        if rule.pattern is not None:
            schema["pattern"] = f"^{rule.pattern}$"
        elif rule.forbidden or rule.single_line:
            excluded = re.escape(rule.forbidden) + ("\\r\\n" if rule.single_line else "")
            schema["pattern"] = f"^[^{excluded}]*$"
        return schema
    if rule.kind in ("number", "integer"):
        schema = {"type": rule.kind}
        if rule.minimum is not None:
            schema["minimum"] = rule.minimum
        if rule.maximum is not None:
            schema["maximum"] = rule.maximum
        return schema
    if rule.kind == "list":
        assert rule.items is not None
        schema = {"type": "array", "items": _value_schema(rule.items)}
        if rule.min_items:
            schema["minItems"] = rule.min_items
        if rule.max_items is not None:
            schema["maxItems"] = rule.max_items
        if rule.distinct:
            schema["uniqueItems"] = True
        return schema
    raise AssertionError(rule.kind)


def _field_schema(spec: SessionField, fields: tuple[SessionField, ...], *, strict: bool) -> dict[str, Any]:
    if spec.rule.kind == "object":
        schema = _object_schema(spec.path, fields, strict=strict)
    else:
        schema = _value_schema(spec.rule)
    schema["description"] = " ".join(field_notes(spec))
    if spec.nullable:
        schema["nullable"] = True
    return schema


def _object_schema(path: str, fields: tuple[SessionField, ...], *, strict: bool) -> dict[str, Any]:
    """An object's schema; with `when` children (turn detection's types), one variant per type."""
    children = index(fields).children.get(path, [])
    properties = {c.name: _field_schema(c, fields, strict=strict) for c in children}
    required = [c.name for c in children if c.required and c.default is None]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": not strict}
    if required:
        schema["required"] = required
    selectors = {c.when[0] for c in children if c.when}
    if not strict or not selectors:
        return schema
    (selector,) = selectors  # one discriminator per object
    variants = []
    for value in index(fields).by_path[f"{path}.{selector}"].rule.values:
        names = [c.name for c in children if c.when is None or value in c.when[1]]
        variant_props = {name: properties[name] for name in names}
        variant_props[selector] = {**properties[selector], "enum": [value]}
        variants.append({"type": "object", "properties": variant_props, "additionalProperties": False})
    return {"anyOf": variants}


def preset_session_schema(fields: tuple[SessionField, ...] = FIELDS) -> dict[str, Any]:
    """A preset's `session`: what the validator accepts (every key optional but the required ones)."""
    return _object_schema("", fields, strict=True)


def request_schema(fields: tuple[SessionField, ...] = FIELDS) -> dict[str, Any]:
    """The POST body: `preset` and every override of the description, all optional, no other key."""
    properties: dict[str, Any] = {
        "preset": {
            "type": "string",
            "nullable": True,
            # An empty name asks for the default preset too (what a page's empty <select> sends).
            "pattern": f"^(?:{NAME_PATTERN})?$",
            "maxLength": NAME_MAX_LENGTH,
            "description": "The preset's name; absent, null or empty: the default preset.",
            "example": "meetings-fr",
        }
    }
    for name, spec in index(fields).by_override.items():
        removes = "turns it off" if spec.override_null_off else "removes the preset's value"
        value = _value_schema(spec.rule)
        if "enum" in value:
            value["enum"] = [*value["enum"], None]  # OpenAPI 3.0: a nullable enum lists null
        properties[name] = {
            **value,
            "nullable": True,
            "description": f"Changes `{spec.path}` ({removes} when null). {field_notes(spec)[0]}",
        }
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "description": f"{', '.join(f'`{n}`' for n in index(fields).overrides)} are accepted only when the "
        "preset lists them in `overridable` (else 400 `override_not_allowed`). The whole body is at most "
        f"{MAX_BODY_BYTES} bytes.",
    }


def client_turns_schema(fields: tuple[SessionField, ...] = CLIENT_TURNS_FIELDS) -> dict[str, Any]:
    """A preset's `client_turns` (and the 201's `connect.client_turns`, where both keys are filled)."""
    return _object_schema("", fields, strict=True)


def preset_schema() -> dict[str, Any]:
    """A preset as `GET presets/` shows it (api.serializers.PresetSerializer): every field always present."""
    return _all_required(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": PRESET_NAME_PATTERN, "maxLength": NAME_MAX_LENGTH},
                "title": {"type": "string", "maxLength": TITLE_MAX_LENGTH},
                "description": {"type": "string"},
                "default": {"type": "boolean"},
                "overridable": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(OVERRIDABLE_FIELDS)},
                    "uniqueItems": True,
                },
                "expires_after_seconds": {
                    "type": "integer",
                    "minimum": MIN_EXPIRES_AFTER,
                    "maximum": MAX_EXPIRES_AFTER,
                    "description": "Lifetime of the ephemeral key (GA upstreams only).",
                },
                "session": {"$ref": "#/components/schemas/PresetSession"},
                # The relay options (docs/presets.md#relay-presets): a client learns the session's limits.
                **{spec.name: _field_schema(spec, RELAY_FIELDS, strict=True) for spec in RELAY_FIELDS},
            },
            "additionalProperties": False,
        }
    )


def _all_required(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema whose every property is always present in the answer."""
    return {**schema, "required": list(schema["properties"])}


PRESET_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Preset"}}},
    "required": ["results"],
    "additionalProperties": False,
}


def transcription_session_schema(fields: tuple[SessionField, ...] = FIELDS) -> dict[str, Any]:
    """The 201 body: the beta endpoint's "Returns" shape plus `preset` and `connect`. Nested objects stay
    open: they echo what the upstream answered."""
    by_path = index(fields).by_path

    def echoed(path: str) -> dict[str, Any]:
        schema = _field_schema(by_path[path], fields, strict=False)
        schema["nullable"] = True  # the upstream may answer null for what was not sent
        return schema

    return _all_required(
        {
            "type": "object",
            "properties": {
                "client_secret": {
                    "type": "object",
                    "properties": {
                        "value": {
                            "type": "string",
                            "minLength": 1,
                            "description": "The ephemeral key (`ek_…`), or for a relay preset the relay "
                            "ticket (`rts_…`).",
                        },
                        "expires_at": {"type": "integer", "description": "Unix time when the key expires."},
                    },
                    "required": ["value", "expires_at"],
                },
                "input_audio_format": _value_schema(by_path["input_audio_format"].rule),
                "input_audio_transcription": echoed("input_audio_transcription"),
                "modalities": {"type": "array", "items": {"type": "string"}},
                "turn_detection": echoed("turn_detection"),
                "input_audio_noise_reduction": echoed("input_audio_noise_reduction"),
                "include": {"type": "array", "nullable": True, "items": {"type": "string"}},
                "id": {
                    "type": "string",
                    "nullable": True,
                    "description": "The upstream session id; for a relay preset, the relay session's id.",
                },
                "preset": {"type": "string", "description": "The preset that was applied."},
                "connect": {
                    "type": "object",
                    "properties": {
                        "api": {
                            "type": "string",
                            "enum": ["ga", "beta", "relay"],
                            "description": "The connection flow: OpenAI's GA or beta one, or `relay` (the "
                            "site's own WebSocket, opened like OpenAI's with the ticket as the key).",
                        },
                        "webrtc_url": {
                            "type": "string",
                            "format": "uri",
                            "nullable": True,
                            "description": "Where a browser posts its SDP offer; null for a relay session "
                            "(WebSocket only).",
                        },
                        "websocket_url": {"type": "string"},
                        "transports": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["webrtc", "websocket"]},
                            "description": "The transports the session's model supports, preferred first.",
                        },
                        "client_turns": {
                            **_all_required(client_turns_schema()),
                            "nullable": True,
                            "description": "How the browser client ends turns itself when the upstream "
                            "detects none (turn detection null); null when the upstream detects turns.",
                        },
                    },
                    "required": ["api", "webrtc_url", "websocket_url", "transports", "client_turns"],
                    "additionalProperties": False,
                    "description": "Where the browser connects with the key.",
                },
            },
            "additionalProperties": False,
        }
    )


def error_schema(status: int) -> dict[str, Any]:
    """`{"detail", "code"[, "errors"]}` with the codes a `status` response can carry."""
    code: dict[str, Any] = {"type": "string", "description": "Stable code."}
    if status in AUTHENTICATION_STATUSES:
        # An authentication class may add codes of its own (djangorestframework-simplejwt: token_not_valid).
        code["description"] = (
            f"Stable code: {', '.join(f'`{c}`' for c in ERROR_CODES[status])}, or the code of the site's "
            "authentication class (djangorestframework-simplejwt: `token_not_valid`)."
        )
    else:
        code["enum"] = list(ERROR_CODES[status])
    properties: dict[str, Any] = {
        "detail": {"type": "string", "description": "Human-readable; safe to show to the user."},
        "code": code,
    }
    if status == 400:
        properties["errors"] = {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Messages by field name.",
        }
    return {
        "type": "object",
        "properties": properties,
        "required": ["detail", "code"],
        "additionalProperties": False,
        "description": _ERROR_INFO[status][1],
    }


# ------------------------------------------------------------- marker serializers and their schemas


class _SchemaOnly(serializers.Serializer):
    """A serializer that exists only to name a component; ``_SchemaOnlyExtension`` gives its schema."""

    # Built when the schema is generated (not at import: the help texts are lazy translations).
    build_schema: Callable[[], dict[str, Any]] = staticmethod(dict)
    requires: tuple[type[_SchemaOnly], ...] = ()  # components its schema `$ref`s


class PresetSessionComponent(_SchemaOnly):
    build_schema = staticmethod(preset_session_schema)


class PresetComponent(_SchemaOnly):
    build_schema = staticmethod(preset_schema)
    requires = (PresetSessionComponent,)


class PresetListComponent(_SchemaOnly):
    build_schema = staticmethod(lambda: copy.deepcopy(PRESET_LIST_SCHEMA))
    requires = (PresetComponent,)


class TranscriptionSessionRequestComponent(_SchemaOnly):
    build_schema = staticmethod(request_schema)


class TranscriptionSessionComponent(_SchemaOnly):
    build_schema = staticmethod(transcription_session_schema)


def _error_serializer(status: int) -> type[_SchemaOnly]:
    name = ERROR_COMPONENTS[status]
    return type(
        f"{name}Component",
        (_SchemaOnly,),
        {"build_schema": staticmethod(lambda: error_schema(status)), "__module__": __name__},
    )


_ERROR_SERIALIZERS: dict[int, type[_SchemaOnly]] = {
    status: _error_serializer(status) for status in ERROR_CODES
}


class _SchemaOnlyExtension(OpenApiSerializerExtension):
    """Every marker serializer's component is its generated ``build_schema()``."""

    target_class = _SchemaOnly
    match_subclasses = True

    def _cls(self) -> type[_SchemaOnly]:
        return self.target if isinstance(self.target, type) else type(self.target)

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        for required in self._cls().requires:
            auto_schema.resolve_serializer(required, direction)  # registers the `$ref`ed component
        # A fresh dict each time: drf-spectacular's post-processing rewrites component schemas in place.
        return self._cls().build_schema()

    def get_name(self, auto_schema: Any, direction: Any) -> str | None:
        return self._cls().__name__.removesuffix("Component")


# ------------------------------------------------------------------------------------------ headers


def _header(name: str, schema: dict[str, Any], description: str, statuses: Any, required: bool) -> Any:
    return OpenApiParameter(
        name,
        type=schema,
        location=OpenApiParameter.HEADER,
        required=required,
        description=description,
        response=statuses if statuses is True else [str(s) for s in statuses],
    )


# Every answer of the token endpoint, and every error; not the preset list's 200.
_NO_STORE = _header(
    "Cache-Control",
    {"type": "string", "enum": ["no-store"]},
    "Never cache this answer.",
    [201, *ERROR_CODES],
    True,
)
_RETRY_SCHEMA = {"type": "integer", "minimum": 1}
_RETRY_AFTER_REQUIRED = _header(
    "Retry-After",
    _RETRY_SCHEMA,
    "Seconds until the rate-limit window (or the quota's day) ends.",
    [429],
    True,
)
_RETRY_AFTER_OPTIONAL = _header(
    "Retry-After",
    _RETRY_SCHEMA,
    "Seconds to wait before trying again, when known (passed on from the upstream, or "
    f"{OUTAGE_RETRY_AFTER} while the "
    "rate-limit cache or the database is down).",
    [503],
    False,
)
_WWW_AUTHENTICATE = _header(
    "WWW-Authenticate", {"type": "string"}, "The authentication scheme to use.", [401], False
)
_HEADERS = [_NO_STORE, _RETRY_AFTER_REQUIRED, _RETRY_AFTER_OPTIONAL, _WWW_AUTHENTICATE]


def _error(status: int) -> OpenApiResponse:
    return OpenApiResponse(response=_ERROR_SERIALIZERS[status], description=_ERROR_INFO[status][1])


_AUTH_ERRORS = {status: _error(status) for status in (401, 403, 405, 406)}

CREATE_OPERATION = "rt_sessions_create_transcription_session"
LIST_OPERATION = "rt_sessions_list_presets"

#: status -> response, for `POST transcription-sessions/`
CREATE_RESPONSES: dict[int, OpenApiResponse] = {
    201: OpenApiResponse(
        response=TranscriptionSessionComponent,
        description='An ephemeral key and the session it is bound to, in the beta endpoint\'s "Returns" '
        "shape whichever upstream served it, plus `preset` and `connect`.",
    ),
    400: _error(400),
    **_AUTH_ERRORS,
    404: _error(404),
    429: _error(429),
    502: _error(502),
    503: _error(503),
    504: _error(504),
}

#: status -> response, for `GET presets/`
LIST_RESPONSES: dict[int, OpenApiResponse] = {
    200: OpenApiResponse(response=PresetListComponent, description="The active presets this user may use."),
    **_AUTH_ERRORS,
    503: _error(503),
}

_create_schema = extend_schema(
    operation_id=CREATE_OPERATION,
    summary="Get an ephemeral transcription key",
    description=(
        "Applies a preset (the default one when `preset` is absent) with the overrides it allows, asks the "
        "upstream for an ephemeral key and records the request in the audit log. The body is optional and "
        f"at most {MAX_BODY_BYTES} bytes of JSON."
    ),
    tags=[TAG],
    parameters=_HEADERS,
    request={"application/json": TranscriptionSessionRequestComponent},
    responses=CREATE_RESPONSES,
    examples=[
        OpenApiExample("Default preset", value={}, request_only=True),
        OpenApiExample(
            "Overrides",
            value={"preset": "meetings-fr", "language": "de", "noise_reduction": "near_field"},
            request_only=True,
        ),
        OpenApiExample(
            "Languages and keywords",
            value={"preset": "meetings", "languages": ["en", "fr"], "keywords": ["Kubernetes", "ACME-42"]},
            request_only=True,
        ),
    ],
)

_list_schema = extend_schema(
    operation_id=LIST_OPERATION,
    summary="The presets this user may use",
    description="The active presets the requesting user may ask a token for, by name.",
    tags=[TAG],
    parameters=_HEADERS,
    request=None,
    responses=LIST_RESPONSES,
)


# drf-spectacular turns `target_class` (a dotted path) into the class itself before calling these.


class TranscriptionSessionViewSchema(OpenApiViewExtension):
    """Schema-only replacement of the token view: its `post` annotated, nothing else changed."""

    target_class = "django_rt_sessions.api.views.TranscriptionSessionView"

    def view_replacement(self) -> Any:
        return extend_schema_view(post=_create_schema)(
            type("TranscriptionSessionView", (cast(type, self.target_class),), {})
        )


class PresetListViewSchema(OpenApiViewExtension):
    """Schema-only replacement of the preset list view."""

    target_class = "django_rt_sessions.api.views.PresetListView"

    def view_replacement(self) -> Any:
        return extend_schema_view(get=_list_schema)(
            type("PresetListView", (cast(type, self.target_class),), {})
        )
