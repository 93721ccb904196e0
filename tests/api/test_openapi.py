"""The OpenAPI description (drf-spectacular, the `openapi` extra) and a schemathesis run against it.

The schema is served by tests/openapi_urls.py (the test URLs plus `api/schema/`); the `spectacular` fixture
points ROOT_URLCONF and DRF's DEFAULT_SCHEMA_CLASS at it, so tests/settings.py needs nothing. The fuzzing
goes through Django's real WSGI handler (CSRF middleware included) to the OpenAI stand-in.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response as StResponse
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import django_rt_sessions.api.openapi as rt_openapi  # registers the extensions even before apps.py does
from django_rt_sessions.errors import ERRORS
from django_rt_sessions.testing.behaviours import Error, Garbage, Hang, RateLimit

from ..conftest import post

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_URL = "/api/schema/"
CREATE = "/rt/transcription-sessions/"
LIST = "/rt/presets/"

# docs/http-api.md: every `code` an error of each status may carry on POST transcription-sessions/.
EXPECTED_CODES = {
    400: {"invalid", "override_not_allowed"},
    401: {"not_authenticated", "authentication_failed"},
    403: {"not_authenticated", "authentication_failed", "permission_denied", "preset_forbidden"},
    404: {"preset_not_found"},
    405: {"method_not_allowed"},
    406: {"not_acceptable"},
    429: {"rate_limited", "quota_exceeded", "throttled"},
    502: {"upstream_error"},
    503: {"upstream_unavailable", "rate_limit_unavailable", "service_unavailable", "misconfigured"},
    504: {"upstream_timeout"},
}
RESPONSE_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def spectacular(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.openapi_urls"
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    }


@pytest.fixture
def document(spectacular: None, client: Client) -> dict[str, Any]:
    """The schema as the schema view serves it."""
    response = client.get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a `$ref` (components only), also in drf-spectacular's `allOf: [{"$ref"}]` wrapping."""
    if len(schema.get("allOf", ())) == 1:
        schema = schema["allOf"][0]
    if "$ref" in schema:
        return doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def response_schema(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    response = doc["paths"][path][method]["responses"][str(status)]
    return resolve(doc, response["content"]["application/json"]["schema"])


def code_enum(doc: dict[str, Any], path: str, method: str, status: int) -> set[str]:
    """The codes a status may carry: its enum, or (authentication failures, open to the site's
    authentication class) the codes its description names."""
    code = resolve(doc, response_schema(doc, path, method, status)["properties"]["code"])
    if status in (401, 403):
        assert "enum" not in code and "token_not_valid" in code["description"]
        return set(re.findall(r"`([a-z_]+)`", code["description"])) - {"token_not_valid"}
    return set(code["enum"])


def component_validator(doc: dict[str, Any], name: str) -> OAS30Validator:
    """A validator for one component, its `$ref`s resolved inside the document."""
    return OAS30Validator({**doc["components"]["schemas"][name], "components": doc["components"]})


# ------------------------------------------------------------------------------------ the document


def test_schema_is_valid_openapi_3_and_matches_the_generator(document: dict[str, Any]) -> None:
    from drf_spectacular.generators import SchemaGenerator

    validate_spec(document)
    assert document["openapi"].startswith("3.")
    generated = SchemaGenerator(urlconf="tests.urls").get_schema(request=None, public=True)
    assert json.loads(json.dumps(generated)) == document
    # Generating twice gives the same document (the hand-written component schemas are not mutated).
    again = SchemaGenerator(urlconf="tests.urls").get_schema(request=None, public=True)
    assert json.loads(json.dumps(again)) == document


def test_both_endpoints_and_only_their_methods(document: dict[str, Any]) -> None:
    assert set(document["paths"]) == {LIST, CREATE}
    assert set(document["paths"][LIST]) == {"get"}
    assert set(document["paths"][CREATE]) == {"post"}


def test_request_body_matches_the_validator(document: dict[str, Any]) -> None:
    body = document["paths"][CREATE]["post"]["requestBody"]
    assert not body.get("required")  # the whole body is optional
    schema = resolve(document, body["content"]["application/json"]["schema"])
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "preset",
        "language",
        "languages",
        "keywords",
        "prompt",
        "noise_reduction",
    }
    assert "required" not in schema
    props = schema["properties"]
    assert props["language"]["pattern"] == "^[a-z]{2}$" and props["language"]["nullable"] is True
    assert props["prompt"]["maxLength"] == 4000 and props["prompt"]["nullable"] is True
    validator = component_validator(document, "TranscriptionSessionRequest")
    for good in (
        {},
        {"preset": "meetings-fr"},
        {"preset": None, "language": None, "prompt": None, "noise_reduction": None},
        {"language": "de", "prompt": "x" * 4000, "noise_reduction": "near_field"},
        {"noise_reduction": "far_field"},
        {"languages": ["en", "fr"], "keywords": ["Kubernetes", "ACME-42"]},
        {"languages": None, "keywords": None},
    ):
        assert validator.is_valid(good), good
    for bad in (
        [],
        "x",
        {"unknown": 1},
        {"language": "DE"},
        {"language": "deu"},
        {"language": 7},
        {"prompt": "x" * 4001},
        {"noise_reduction": "loud"},
        {"noise_reduction": {"type": "far_field"}},
        {"preset": 3},
        {"languages": []},
        {"languages": ["en", "en"]},
        {"languages": ["EN"]},
        {"keywords": ["<b>"]},
        {"keywords": ["two\nlines"]},
        {"keywords": [""]},
        {"keywords": ["k"] * 101},
    ):
        assert not validator.is_valid(bad), bad


def test_every_error_code_is_listed_under_its_status(document: dict[str, Any]) -> None:
    responses = document["paths"][CREATE]["post"]["responses"]
    assert set(responses) == {"201"} | {str(status) for status in EXPECTED_CODES}
    for status, codes in EXPECTED_CODES.items():
        assert code_enum(document, CREATE, "post", status) == codes, status
        schema = response_schema(document, CREATE, "post", status)
        assert schema["required"] == ["detail", "code"]
        assert schema["additionalProperties"] is False
        assert ("errors" in schema["properties"]) == (status == 400)
    # Every code the app raises (errors.ERRORS) appears under its own status.
    for code, (status, _outcome, _detail, _retry) in ERRORS.items():
        assert code in code_enum(document, CREATE, "post", status), code
    # GET presets/: the authentication, method, Accept and database errors, and no others.
    assert set(document["paths"][LIST]["get"]["responses"]) == {"200", "401", "403", "405", "406", "503"}


def test_headers_are_documented(document: dict[str, Any]) -> None:
    for path, method in ((CREATE, "post"), (LIST, "get")):
        for status, response in document["paths"][path][method]["responses"].items():
            headers = response.get("headers", {})
            if status == "200":  # the preset list may be cached by the browser
                assert "Cache-Control" not in headers
                continue
            assert headers["Cache-Control"]["required"] is True, (path, status)
            assert headers["Cache-Control"]["schema"]["enum"] == ["no-store"]
            assert ("Retry-After" in headers) == (status in ("429", "503")), (path, status)
    create = document["paths"][CREATE]["post"]["responses"]
    assert create["429"]["headers"]["Retry-After"]["required"] is True
    assert not create["503"]["headers"]["Retry-After"].get("required")
    assert create["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}


def test_201_schema_is_the_seed_returns_shape(document: dict[str, Any]) -> None:
    schema = response_schema(document, CREATE, "post", 201)
    assert set(schema["required"]) == {
        "client_secret",
        "input_audio_format",
        "input_audio_transcription",
        "modalities",
        "turn_detection",
        "input_audio_noise_reduction",
        "include",
        "id",
        "preset",
        "connect",
    }
    assert schema["properties"]["client_secret"]["required"] == ["value", "expires_at"]
    connect = schema["properties"]["connect"]
    assert connect["required"] == ["api", "webrtc_url", "websocket_url", "transports", "client_turns"]
    assert resolve(document, connect["properties"]["api"])["enum"] == ["ga", "beta", "relay"]


def test_preset_list_schema(document: dict[str, Any], api: Client, preset: Any) -> None:
    validator = component_validator(document, "PresetList")
    body = api.get(LIST).json()
    assert body["results"] and validator.is_valid(body), list(validator.iter_errors(body))
    broken = copy.deepcopy(body)
    broken["results"][0]["session"]["input_audio_format"] = "mp3"
    assert not validator.is_valid(broken)


# ------------------------------------------------------------------------------------ schemathesis


def test_a_relay_ticket_conforms(document: dict[str, Any], api: Client, preset: Any) -> None:
    """A relay preset's 201 (the ticket, `connect.api` relay, no WebRTC URL) and its preset in the list."""
    preset.relay = True
    preset.save()
    body = post(api).json()
    validator = component_validator(document, "TranscriptionSession")
    assert body["connect"]["webrtc_url"] is None and validator.is_valid(body), list(
        validator.iter_errors(body)
    )
    listed = api.get(LIST).json()
    assert listed["results"][0]["relay"] is True
    assert component_validator(document, "PresetList").is_valid(listed)


@pytest.fixture
def wsgi(spectacular: None, upstream: Any, preset: Any, user: Any, settings: Any) -> Iterator[dict[str, Any]]:
    """Django's real WSGI handler, a logged-in user with a CSRF token, the stand-in upstream, a preset.

    Like Django's test client, the handler must not close the test's database connection (which holds the
    test transaction) at the end of each request.
    """
    settings.RT_SESSIONS = {**settings.RT_SESSIONS, "USER_RATE": None, "IP_RATE": None, "MAX_RETRIES": 0}
    login = Client()
    login.force_login(user)
    csrf = _get_new_csrf_string()
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        app = get_wsgi_application()
        yield {
            "schema": schemathesis.openapi.from_wsgi(SCHEMA_URL, app),
            "cookies": {settings.SESSION_COOKIE_NAME: login.cookies[settings.SESSION_COOKIE_NAME].value},
            "csrf": csrf,
        }
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def call(wsgi: dict[str, Any], case: Any) -> StResponse:
    cookies = {**wsgi["cookies"], "csrftoken": wsgi["csrf"]}
    return case.call(headers={"X-CSRFToken": wsgi["csrf"]}, cookies=cookies)


def fuzz(
    wsgi: dict[str, Any], operation: Any, mode: GenerationMode, examples: int, seen: Counter[Any]
) -> None:
    checks = [*RESPONSE_CHECKS, negative_data_rejection] if mode.is_negative else RESPONSE_CHECKS
    strategy = operation.as_strategy(
        generation_mode=mode,
        # Fixed, so that negative mode mutates what the client sends, not the login.
        cookies={**wsgi["cookies"], "csrftoken": wsgi["csrf"]},
        headers={"X-CSRFToken": wsgi["csrf"]},
    )

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = call(wsgi, case)
        seen[(operation.method.upper(), mode.value, response.status_code)] += 1
        # Healthy upstream: a 5xx would mean we sent it something it refuses, or a crash.
        assert response.status_code < 500, response.text
        case.validate_response(response, checks=checks)

    run()


def test_schemathesis_fuzzing_conforms(wsgi: dict[str, Any]) -> None:
    """Positive and negative cases for both operations: no 5xx, every response as documented."""
    schema = wsgi["schema"]
    seen: Counter[tuple[str, str, int]] = Counter()
    create = schema[CREATE]["POST"]
    fuzz(wsgi, create, GenerationMode.POSITIVE, 80, seen)
    fuzz(wsgi, create, GenerationMode.NEGATIVE, 80, seen)
    fuzz(wsgi, schema[LIST]["GET"], GenerationMode.POSITIVE, 3, seen)  # no input: nothing to negate
    # The fuzzer reached the interesting answers: keys issued, bad bodies refused, unknown presets.
    assert seen[("POST", "positive", 201)] >= 5, seen
    assert seen[("POST", "negative", 400)] >= 5, seen
    assert seen[("GET", "positive", 200)] >= 1, seen
    assert any(status == 404 for (_m, _mode, status) in seen), seen


@pytest.mark.parametrize(
    ("behaviour", "status", "code", "retry_after"),
    [
        (RateLimit(retry_after=7), 503, "upstream_unavailable", "7"),
        (Error(status=400, code="invalid_value", message="no"), 502, "upstream_error", None),
        (Garbage(body=b"<html>", status=200, content_type="text/html"), 502, "upstream_error", None),
        (Hang(max_seconds=5), 504, "upstream_timeout", None),
    ],
    ids=["upstream-429", "upstream-400", "garbage", "timeout"],
)
def test_upstream_failures_conform(
    wsgi: dict[str, Any],
    upstream: Any,
    settings: Any,
    behaviour: Any,
    status: int,
    code: str,
    retry_after: Any,
) -> None:
    settings.RT_SESSIONS = {**settings.RT_SESSIONS, "READ_TIMEOUT": 0.5}
    upstream.enqueue(behaviour)
    case = wsgi["schema"][CREATE]["POST"].Case(body={})
    response = call(wsgi, case)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.headers.get("retry-after") == ([retry_after] if retry_after else None)
    case.validate_response(response, checks=RESPONSE_CHECKS)


def test_refusals_conform(wsgi: dict[str, Any], settings: Any, preset: Any, group: Any) -> None:
    """429 with Retry-After, 403 without CSRF or login or group, 404, 400 override_not_allowed."""
    operation = wsgi["schema"][CREATE]["POST"]
    settings.RT_SESSIONS = {**settings.RT_SESSIONS, "USER_RATE": "1/h"}
    statuses = []
    for body in ({}, {}):
        case = operation.Case(body=body)
        response = call(wsgi, case)
        case.validate_response(response, checks=RESPONSE_CHECKS)
        statuses.append(response.status_code)
    assert statuses == [201, 429]
    assert int(response.headers["retry-after"][0]) >= 1

    case = operation.Case(body={})
    no_csrf = case.call(cookies=wsgi["cookies"])
    anonymous = case.call(headers={"X-CSRFToken": wsgi["csrf"]}, cookies={"csrftoken": wsgi["csrf"]})
    for response in (no_csrf, anonymous):
        assert response.status_code == 403
        case.validate_response(response, checks=RESPONSE_CHECKS)
    assert {no_csrf.json()["code"], anonymous.json()["code"]} == {"permission_denied", "not_authenticated"}

    settings.RT_SESSIONS = {**settings.RT_SESSIONS, "USER_RATE": None}
    preset.overridable = []
    preset.save()
    preset.groups.add(group)
    for body, status, code in (
        ({"language": "de"}, 403, "preset_forbidden"),
        ({"preset": "nope"}, 404, "preset_not_found"),
    ):
        case = operation.Case(body=body)
        response = call(wsgi, case)
        assert (response.status_code, response.json()["code"]) == (status, code)
        case.validate_response(response, checks=RESPONSE_CHECKS)
    preset.groups.clear()
    case = operation.Case(body={"language": "de"})
    response = call(wsgi, case)
    assert (response.status_code, response.json()["code"]) == (400, "override_not_allowed")
    case.validate_response(response, checks=RESPONSE_CHECKS)


def test_method_and_accept_errors_conform(wsgi: dict[str, Any]) -> None:
    operation = wsgi["schema"][CREATE]["POST"]
    case = operation.Case(body={}, headers={"Accept": "text/html"})
    response = call(wsgi, case)
    assert (response.status_code, response.json()["code"]) == (406, "not_acceptable")
    case.validate_response(response, checks=RESPONSE_CHECKS)
    # A GET on the POST endpoint is no documented operation: its body is checked against the 405 component.
    client = Client()
    client.cookies.load(wsgi["cookies"])
    answer = client.get(CREATE)
    assert answer.status_code == 405
    body = answer.json()
    document = wsgi["schema"].raw_schema
    assert component_validator(document, "MethodNotAllowedError").is_valid(body), body


def test_schema_check_fails_on_a_non_conforming_response(wsgi: dict[str, Any]) -> None:
    """The conformance checks can fail: a real 201 with one field broken, and a 429 without Retry-After."""
    operation = wsgi["schema"][CREATE]["POST"]
    case = operation.Case(body={})
    response = call(wsgi, case)
    assert response.status_code == 201
    case.validate_response(response, checks=RESPONSE_CHECKS)

    def doctored(status: int, body: Any, headers: dict[str, list[str]]) -> StResponse:
        return StResponse(
            status_code=status,
            headers=headers,
            content=json.dumps(body).encode(),
            request=response.request,
            elapsed=response.elapsed,
            verify=response.verify,
        )

    body = response.json()
    for mutate in (
        lambda b: b.pop("connect"),
        lambda b: b.update(input_audio_format="mp3"),
        lambda b: b.update(secret="ek_leak"),
        lambda b: b["client_secret"].update(expires_at="soon"),
    ):
        broken = copy.deepcopy(body)
        mutate(broken)
        with pytest.raises(FailureGroup):
            case.validate_response(doctored(201, broken, response.headers), checks=RESPONSE_CHECKS)
    error_headers = {"content-type": ["application/json"], "cache-control": ["no-store"]}
    with pytest.raises(FailureGroup):  # an undocumented code
        case.validate_response(
            doctored(503, {"detail": "x", "code": "rate_limited"}, error_headers), checks=RESPONSE_CHECKS
        )
    with pytest.raises(FailureGroup):  # 429 without its required Retry-After
        case.validate_response(
            doctored(429, {"detail": "x", "code": "rate_limited"}, error_headers), checks=RESPONSE_CHECKS
        )
    with pytest.raises(FailureGroup):  # an undocumented status
        case.validate_response(
            doctored(500, {"detail": "x", "code": "invalid"}, error_headers), checks=RESPONSE_CHECKS
        )


# ------------------------------------------------------------------------------- app registration


def _run(code: str, settings_module: str = "tests.settings", **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OPENAI_", "RT_"))}
    environ.update(DJANGO_SETTINGS_MODULE=settings_module, PYTHONPATH=str(ROOT), **env)
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


def test_app_ready_loads_the_extensions() -> None:
    result = _run(
        "import django, sys; django.setup(); print('django_rt_sessions.api.openapi' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True", "AppConfig.ready() must import django_rt_sessions.api.openapi"


def test_app_works_without_drf_spectacular() -> None:
    code = (
        "import sys; sys.modules['drf_spectacular'] = None\n"  # makes `import drf_spectacular` fail
        "import django; django.setup()\n"
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "from django.core.management import call_command; call_command('migrate', verbosity=0)\n"
        "from django.contrib.auth.models import User; u = User.objects.create_user('x')\n"
        "from django.test import Client; c = Client(); c.force_login(u)\n"
        "r = c.get('/rt/presets/'); print(r.status_code, 'django_rt_sessions.api.openapi' in sys.modules)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200 False"


def test_example_project_serves_the_schema(tmp_path: Path) -> None:
    code = (
        "import json, django; django.setup()\n"
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "from django.test import Client\n"
        "r = Client().get('/api/schema/', {'format': 'json'})\n"
        "doc = json.loads(r.content) if r.status_code == 200 else {}\n"
        "print(json.dumps([r.status_code, sorted(doc.get('paths', {})), doc.get('info', {})]))\n"
    )
    result = _run(
        code,
        "example_project.settings",
        OPENAI_API_KEY="sk-test-placeholder",  # no stand-in started
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert result.returncode == 0, result.stderr
    status, paths, info = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == 200
    assert paths == ["/rt/presets/", "/rt/transcription-sessions/"]
    assert info["title"] and info["version"] != "0.0.0"


def test_error_components_cover_every_status() -> None:
    assert set(rt_openapi.ERROR_CODES) == set(EXPECTED_CODES)
    for status, codes in EXPECTED_CODES.items():
        assert set(rt_openapi.ERROR_CODES[status]) == codes
