"""The README's security notes, end to end: secrets stay out of logs, error reports, mails and the admin;
CSRF/Origin/Referer and the body limit hold; nothing a request carries changes where the app connects; and
access follows the user's state (inactive, preset deleted, group removed) at the very next request.

Already proven elsewhere, not repeated here: a session-auth POST without the CSRF token is 403
(test_api.TestAuthentication), the 8 KiB limit with an honest Content-Length (test_api.TestIssue), the E005
check itself (test_checks.test_e005_for_plain_http_outside_debug), no key in caplog/audit/error bodies for
upstream failures (test_audit). The log guard of every test lives in tests/log_guard.py (see conftest).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
import requests
from django.core import mail
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.core.signals import got_request_exception
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client, override_settings
from django.test.client import FakePayload
from django.urls import reverse
from django.utils.log import AdminEmailHandler
from django.views.debug import ExceptionReporter
from django.views.decorators.debug import sensitive_variables

from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.testing import Error, OpenAIStandIn, RateLimit
from django_rt_sessions.upstreams.openai import OpenAIUpstream

from . import log_guard
from .conftest import PRESETS_URL, TRANSCRIBE_URL, post, set_rt

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
GA_PATH = "/v1/realtime/client_secrets"


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert response["Cache-Control"] == "no-store"
    return body


# ------------------------------------------------------------------------------------ the log guard


INNER_CONFTEST = """
import pytest
from tests.log_guard import guard_fixture_body

@pytest.fixture(autouse=True)
def _no_secret_in_logs(request):
    yield from guard_fixture_body(request)
"""

INNER_TESTS = """
import logging

log = logging.getLogger("inner.app")
EPHEMERAL = "ek_" + "ab12" * 8
API_KEY = "sk-inner-" + "secret-0123"

def test_quiet_debug_records_pass():
    log.debug("issued a key, fingerprint %s", "f" * 64)

def test_an_ephemeral_key_at_debug_trips_the_guard():
    log.debug("handing out %s", EPHEMERAL)

def test_the_env_api_key_in_a_traceback_trips_the_guard(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    try:
        raise RuntimeError("refused " + API_KEY)
    except RuntimeError:
        log.exception("upstream call failed")

def test_an_ephemeral_key_in_args_of_a_silent_logger_still_counts():
    logging.getLogger("inner.quiet").info("session %r", {"value": EPHEMERAL})

def test_a_relay_ticket_trips_the_guard():
    logging.getLogger("inner.relay").warning("refused %s", "rts_" + "Zq9-" * 11)
"""


def test_the_log_guard_trips_on_a_logged_key_and_names_no_secret(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CI", raising=False)  # pytest prints untruncated summaries under CI: keep one output
    result = pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "no:cacheprovider", "--show-capture=no", "-q"
    )
    result.assert_outcomes(passed=5, errors=4)
    output = result.stdout.str()
    assert output.count(log_guard.FAILURE_TITLE) == 4, output
    assert "WARNING inner.relay: relay ticket (rts_ pattern)" in output
    assert "Zq9-" * 11 not in output
    assert "DEBUG inner.app: ephemeral key (ek_ pattern)" in output
    assert "ERROR inner.app: API key" in output
    assert "INFO inner.quiet: ephemeral key (ek_ pattern)" in output
    assert "ab12" * 8 not in output and "secret-0123" not in output, output
    assert "ERROR at teardown of test_an_ephemeral_key_at_debug_trips_the_guard" in output


def test_the_guard_sees_debug_records_of_the_suite(
    api: Client, preset: SessionPreset, upstream: Any, request: pytest.FixtureRequest
) -> None:
    """The autouse guard is live here: DEBUG records of the upstream call reach it (so it can trip)."""
    guard = request.getfixturevalue("_no_secret_in_logs")
    assert post(api).status_code == 201
    assert any(name.startswith("urllib3") and level == "DEBUG" for name, level, _ in guard.entries)
    assert upstream.api_key in guard.api_keys


# -------------------------------------------------------------------------------- error reports


class ConnectInfoFails(OpenAIUpstream):
    """Fails after a successful upstream answer: `_issue` then holds the config and the result."""

    def connect_info(self, base_url: str, session: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("connect_info failed")


class NormaliseFails(OpenAIUpstream):
    """Fails inside `create_session`, whose frame then holds `config`, `headers` and `response`."""

    @sensitive_variables("data")  # the answer, key included: an adapter hides it like the built-in code
    def normalise(self, data: Any, sent_session: dict[str, Any]) -> dict[str, Any]:
        super().normalise(data, sent_session)
        raise RuntimeError("normalise failed")


@pytest.fixture
def reports() -> Iterator[list[dict[str, str]]]:
    """Django's error reports (HTML and text, DEBUG off and on) of every exception a view raises."""
    rendered: list[dict[str, str]] = []

    def receiver(sender: Any, request: Any = None, **kwargs: Any) -> None:
        exc_info = sys.exc_info()
        report = {}
        for debug in (False, True):
            with override_settings(DEBUG=debug):
                reporter = ExceptionReporter(request, *exc_info)
                report[f"html-debug={debug}"] = reporter.get_traceback_html()
                report[f"text-debug={debug}"] = reporter.get_traceback_text()
        rendered.append(report)

    got_request_exception.connect(receiver)
    yield rendered
    got_request_exception.disconnect(receiver)


def test_error_report_after_an_issued_key_holds_no_secret(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, reports: list[dict[str, str]]
) -> None:
    set_rt(settings, UPSTREAM=f"{__name__}.ConnectInfoFails")
    with pytest.raises(RuntimeError, match="connect_info failed"):
        post(api)
    [key] = upstream.issued  # the upstream did hand out a key: it is in memory when the error happens
    [report] = reports
    for name, text in report.items():
        assert "connect_info failed" in text, name
        assert "_issue" in text, name  # the frame holding the secrets is in the report
        assert key not in text and key[3:] not in text, name
        assert upstream.api_key not in text, name
    # Its variables are listed (so the test can fail), the sensitive ones starred even with DEBUG on.
    for name in ("html-debug=False", "html-debug=True"):
        assert "_Attempt(" in report[name] and "********" in report[name], name


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_error_report_inside_the_upstream_call_holds_no_api_key(
    api: Client,
    preset: SessionPreset,
    upstream: Any,
    settings: Any,
    reports: list[dict[str, str]],
    debug: bool,
) -> None:
    """With DEBUG on Django shows every local (its own filter switches sensitive_variables off then) and
    serves the page to the browser: the app's views keep the filter on (error_reports.py), and the API key
    must not sit in a plain local of `create_session` at all."""
    set_rt(settings, UPSTREAM=f"{__name__}.NormaliseFails")
    with pytest.raises(RuntimeError, match="normalise failed"):
        post(api)
    [key] = upstream.issued
    [report] = reports
    for kind in ("html", "text"):
        text = report[f"{kind}-debug={debug}"]
        assert "create_session" in text
        assert upstream.api_key not in text, f"the API key is in the {kind} report (DEBUG={debug})"
        assert key not in text, f"the ephemeral key is in the {kind} report (DEBUG={debug})"
    assert "headers" in report[f"html-debug={debug}"]  # the frame's variables are listed


def test_the_500_mail_to_admins_holds_no_secret(
    client: Client, user: Any, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    # Django 6.0 deprecated (name, address) pairs; the test runner already uses the locmem mail backend.
    settings.ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
    set_rt(settings, UPSTREAM=f"{__name__}.ConnectInfoFails")
    # Django's own mail_admins handler sends the text report; a site may add include_html=True.
    html_handler = AdminEmailHandler(include_html=True)
    logging.getLogger("django.request").addHandler(html_handler)
    try:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        response = post(client)
    finally:
        logging.getLogger("django.request").removeHandler(html_handler)
    assert response.status_code == 500
    [key] = upstream.issued
    assert len(mail.outbox) == 2
    [html_part] = [alt[0] for m in mail.outbox for alt in getattr(m, "alternatives", [])]
    # Frame variables are rendered (so the test can fail), the sensitive ones as stars.
    assert "_Attempt(" in html_part and "********" in html_part
    for message in mail.outbox:
        assert "connect_info failed" in message.body
        everything = "\n".join([message.subject, message.body, *(str(a[0]) for a in message.alternatives)])
        assert key not in everything and key[3:] not in everything
        assert upstream.api_key not in everything


class KeyInAPlainLocal(OpenAIUpstream):
    """A plugin adapter that keeps the answer in a local it does not mark with sensitive_variables."""

    def normalise(self, data: Any, sent_session: dict[str, Any]) -> dict[str, Any]:
        answer = dict(data)  # noqa: F841  (the frame holds the key when the error happens)
        raise RuntimeError("normalise failed")


@pytest.fixture
def django_logging_at_debug() -> Iterator[None]:
    """A site whose LOGGING sets Django's loggers (django.template included) to DEBUG."""
    django_logger = logging.getLogger("django")
    level = django_logger.level
    django_logger.setLevel(logging.DEBUG)
    yield
    django_logger.setLevel(level)


def issue_where(where: str, user: Any, admin_user: Any, preset: SessionPreset) -> Any:
    """A token request through the API (as `user`) or the admin's "Issue a test token" (as `admin_user`),
    answered as Django answers a browser: a failure is a 500 page, not an exception in the test."""
    client = Client(raise_request_exception=False)
    if where == "api":
        client.force_login(user)
        return post(client)
    client.force_login(admin_user)
    return client.post(
        reverse("admin:django_rt_sessions_sessionpreset_test_token", args=[preset.pk]), {"confirm": "yes"}
    )


@pytest.mark.parametrize("adapter", ["NormaliseFails", "KeyInAPlainLocal"])
@pytest.mark.parametrize("where", ["api", "admin test token"])
def test_the_debug_page_after_an_issued_key_logs_and_shows_no_key(
    user: Any,
    admin_user: Any,
    preset: SessionPreset,
    upstream: Any,
    settings: Any,
    request: pytest.FixtureRequest,
    django_logging_at_debug: None,
    where: str,
    adapter: str,
) -> None:
    """DEBUG on: Django renders its debug page with every frame's variables, and logs the template context
    (frames and variables included) on django.template at DEBUG while it does."""
    settings.DEBUG = True
    set_rt(settings, UPSTREAM=f"{__name__}.{adapter}")
    response = issue_where(where, user, admin_user, preset)
    assert response.status_code == 500
    [key] = upstream.issued
    page = response.content.decode()
    assert "normalise failed" in page and "sent_session" in page  # the debug page, with frame variables
    assert key not in page and key[3:] not in page
    assert upstream.api_key not in page
    guard = request.getfixturevalue("_no_secret_in_logs")
    template_records = [text for name, level, text in guard.entries if name == "django.template"]
    assert any("sent_session" in text for text in template_records)  # the context was logged
    guard.check()


class UnserialisableExtra(OpenAIUpstream):
    """A plugin adapter whose answer carries a value JSON cannot encode: the failure comes after issuance."""

    def normalise(self, data: Any, sent_session: dict[str, Any]) -> dict[str, Any]:
        return {**super().normalise(data, sent_session), "extra": object()}


@pytest.mark.parametrize("where", ["api", "admin test token"])
def test_a_failure_after_issuance_reports_no_ephemeral_key(
    user: Any,
    admin_user: Any,
    preset: SessionPreset,
    upstream: Any,
    settings: Any,
    reports: list[dict[str, str]],
    where: str,
) -> None:
    """DEBUG off. Refusing such an answer as unusable (502) is fine; failing later (the API's renderer, the
    admin's test-token view) must not put the key in hand into the error report."""
    set_rt(settings, UPSTREAM=f"{__name__}.UnserialisableExtra")
    response = issue_where(where, user, admin_user, preset)
    [key] = upstream.issued
    if not reports:  # no error: the answer was refused cleanly
        assert response.status_code == (502 if where == "api" else 200)
        assert key not in response.content.decode()
    for report in reports:
        for kind in ("html", "text"):
            text = report[f"{kind}-debug=False"]
            assert "not JSON serializable" in text
            assert key not in text, f"the ephemeral key is in the {kind} report ({where}, DEBUG off)"
            assert upstream.api_key not in text


# ------------------------------------------------------------------------------------------- admin


def test_no_secret_on_any_admin_page(
    admin_client: Client, api: Client, preset: SessionPreset, upstream: Any
) -> None:
    assert post(api).status_code == 201
    upstream.enqueue(Error(401, "invalid_api_key", f"Incorrect API key provided: {upstream.api_key}"))
    assert post(api).status_code == 502
    test_token = reverse("admin:django_rt_sessions_sessionpreset_test_token", args=[preset.pk])
    assert admin_client.post(test_token, {"confirm": "yes"}).status_code == 200
    assert len(upstream.issued) == 2
    who = reverse("admin:django_rt_sessions_tokenrequest_who_received")
    pages = {
        "who-received (post)": admin_client.post(who, {"key": upstream.issued[0]}),
        "test token": admin_client.post(test_token, {"confirm": "yes"}),
    }
    urls = [
        reverse("admin:index"),
        reverse("admin:django_rt_sessions_sessionpreset_changelist"),
        reverse("admin:django_rt_sessions_sessionpreset_change", args=[preset.pk]),
        reverse("admin:django_rt_sessions_tokenrequest_changelist"),
        reverse("admin:django_rt_sessions_tokenrequest_export"),
        who,
        *(reverse("admin:django_rt_sessions_tokenrequest_change", args=[pk]) for pk in _row_pks()),
    ]
    for url in urls:
        pages[url] = admin_client.get(url)
    assert len(upstream.issued) == 3
    secrets = [upstream.api_key, *upstream.issued, *(key[3:] for key in upstream.issued)]
    for name, response in pages.items():
        assert response.status_code == 200, name
        content = (b"".join(response.streaming_content) if response.streaming else response.content).decode()
        for secret in secrets:
            assert secret not in content, name
    # The audit row of the upstream answer that echoed the key shows it redacted, not dropped.
    echoed = TokenRequest.objects.get(upstream_status=401)
    detail = reverse("admin:django_rt_sessions_tokenrequest_change", args=[echoed.pk])
    assert "[redacted]" in pages[detail].content.decode()


def _row_pks() -> list[int]:
    return list(TokenRequest.objects.order_by("pk").values_list("pk", flat=True))


# ------------------------------------------------------------------------------- CSRF and Origin


def csrf_post(client: Client, **extra: Any) -> Any:
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    return post(client, {}, HTTP_X_CSRFTOKEN=token, **extra)


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"HTTP_ORIGIN": "https://evil.example"}, 403),
        ({"HTTP_ORIGIN": "http://testserver.evil.example"}, 403),
        ({"HTTP_ORIGIN": "null"}, 403),
        ({"HTTP_ORIGIN": "http://testserver"}, 201),
        ({"secure": True, "HTTP_REFERER": "https://evil.example/page"}, 403),
        ({"secure": True}, 403),  # https without a Referer
        ({"secure": True, "HTTP_ORIGIN": "https://evil.example", "HTTP_REFERER": "https://testserver/"}, 403),
        ({"secure": True, "HTTP_REFERER": "http://testserver/page"}, 403),  # downgraded referer
        ({"secure": True, "HTTP_REFERER": "https://testserver/page"}, 201),
        ({"secure": True, "HTTP_ORIGIN": "https://testserver"}, 201),
    ],
    ids=str,
)
def test_csrf_origin_and_referer_with_a_valid_token(
    csrf_client: Client, preset: SessionPreset, upstream: Any, extra: dict[str, Any], status: int
) -> None:
    response = csrf_post(csrf_client, **extra)
    if status == 403:
        body = assert_error(response, 403, "permission_denied")
        assert "CSRF" in body["detail"]
        assert upstream.requests == []
        assert TokenRequest.objects.count() == 0  # refused before the user is authenticated
    else:
        assert response.status_code == 201, response.content
        assert len(upstream.requests) == 1


# ------------------------------------------------------------------------------------- body size


def raw_post(client: Client, body: bytes, **environ: Any) -> Any:
    """A POST whose WSGI environ is exactly `environ` (no Content-Length unless given)."""
    return client.request(
        PATH_INFO=TRANSCRIBE_URL, REQUEST_METHOD="POST", **{"wsgi.input": FakePayload(body)}, **environ
    )


BIG = b'{"prompt": "' + b"x" * 9000 + b'"}'


@pytest.mark.parametrize(
    "environ",
    [
        {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "8193"},  # declared too big, body tiny
        {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(BIG) + 10**9)},
        {"CONTENT_LENGTH": str(len(BIG))},  # no Content-Type: DRF skips its parsers, the view reads
        {"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": str(len(BIG))},
    ],
    ids=["declared-8193", "declared-huge", "no-content-type", "text-plain"],
)
def test_oversized_or_undeclarable_bodies_are_refused_unsent(
    api: Client, preset: SessionPreset, upstream: Any, environ: dict[str, str]
) -> None:
    body = b"{}" if environ.get("CONTENT_LENGTH") != str(len(BIG)) else BIG
    assert_error(raw_post(api, body, **environ), 400, "invalid")
    assert upstream.requests == []
    assert TokenRequest.objects.get().outcome == "invalid"


def test_a_body_longer_than_its_content_length_is_cut_there(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    """A lying (short) Content-Length: at most that many bytes are read, the rest never is."""
    assert_error(raw_post(api, BIG, CONTENT_TYPE="application/json", CONTENT_LENGTH="100"), 400, "invalid")
    assert upstream.requests == []


@pytest.mark.parametrize("length", [{}, {"CONTENT_LENGTH": ""}, {"CONTENT_LENGTH": "lots"}], ids=str)
def test_a_body_without_a_usable_content_length_is_not_read(
    api: Client, preset: SessionPreset, upstream: Any, length: dict[str, str]
) -> None:
    """WSGI gives no body without a (numeric) Content-Length: the request is the empty one (default
    preset), and none of the 9 KB body reaches the upstream."""
    response = raw_post(api, BIG, CONTENT_TYPE="application/json", **length)
    assert response.status_code == 201, response.content
    [sent] = upstream.requests
    assert b"xxxx" not in sent.body
    assert sent.json["session"]["audio"]["input"]["transcription"]["prompt"] == ""


# ---------------------------------------------------------------------------------- system check


def test_manage_py_check_fails_on_plain_http_base_url_in_production(settings: Any) -> None:
    settings.DEBUG = False
    set_rt(settings, BASE_URL="http://proxy.example/v1", API_KEY="sk-test-placeholder")
    with pytest.raises(SystemCheckError, match=r"rt_sessions\.E005"):
        call_command("check")
    set_rt(settings, BASE_URL="https://proxy.example/v1")
    call_command("check")  # the same site over https passes


# ---------------------------------------------------------------------- where the app connects


@pytest.fixture(scope="module")
def evil_server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
def evil(evil_server: OpenAIStandIn) -> OpenAIStandIn:
    evil_server.reset()
    return evil_server


def test_nothing_in_the_request_changes_where_the_app_connects(
    api: Client, preset: SessionPreset, upstream: Any, evil: OpenAIStandIn
) -> None:
    evil_host = evil.url.removeprefix("http://")
    forged = [
        {"HTTP_HOST": "localhost"},
        {"HTTP_X_FORWARDED_HOST": evil_host, "HTTP_X_FORWARDED_PROTO": "https"},
        {"HTTP_FORWARDED": f"for=1.2.3.4;host={evil_host};proto=http"},
        {"HTTP_X_OPENAI_BASE_URL": evil.base_url, "HTTP_AUTHORIZATION": "Bearer sk-someone-else"},
        {"QUERY_STRING": f"base_url={evil.base_url}&upstream=azure&api_key=sk-x"},
    ]
    for extra in forged:
        response = post(api, {"language": "de"}, **extra)
        assert response.status_code == 201, (extra, response.content)
        connect = response.json()["connect"]
        assert connect["webrtc_url"] == f"{upstream.base_url}/realtime/calls", extra
    assert [(r.method, r.path) for r in upstream.requests] == [("POST", GA_PATH)] * len(forged)
    assert {r.headers["authorization"] for r in upstream.requests} == {f"Bearer {upstream.api_key}"}
    assert evil.requests == []
    requests.post(f"{evil.base_url}/realtime/client_secrets", json={}, timeout=5)
    assert len(evil.requests) == 1  # the listener does record what reaches it


@pytest.mark.parametrize("field", ["base_url", "upstream", "api_key", "BASE_URL", "url", "headers"])
def test_connection_fields_in_the_body_are_unknown(
    api: Client, preset: SessionPreset, upstream: Any, evil: OpenAIStandIn, field: str
) -> None:
    body = assert_error(post(api, {field: evil.base_url}), 400, "invalid")
    assert field in body["errors"]
    assert upstream.requests == [] and evil.requests == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_upstream_redirects_are_not_followed(
    api: Client, preset: SessionPreset, upstream: Any, evil: OpenAIStandIn, status: int
) -> None:
    upstream.enqueue(Error(status, headers={"Location": f"{evil.base_url}/realtime/client_secrets"}))
    assert_error(post(api), 502, "upstream_error")
    assert len(upstream.requests) == 1
    assert evil.requests == []
    assert TokenRequest.objects.get().upstream_status == status


# --------------------------------------------------------------------- the user's state changes


def test_an_inactive_user_is_refused_at_the_next_request(
    api: Client, user: Any, preset: SessionPreset, upstream: Any
) -> None:
    assert post(api).status_code == 201
    user.is_active = False
    user.save()
    assert_error(post(api), 403, "not_authenticated")
    assert_error(api.get(PRESETS_URL), 403, "not_authenticated")
    assert len(upstream.requests) == 1
    # The audit (docs/audit.md) covers authenticated requests: the refusal of a no-longer-authenticated
    # user writes no row.
    assert list(TokenRequest.objects.values_list("outcome", flat=True)) == ["issued"]


def test_a_preset_deleted_by_staff_is_not_found(
    api: Client, admin_client: Client, preset: SessionPreset, upstream: Any
) -> None:
    assert [p["name"] for p in api.get(PRESETS_URL).json()["results"]] == ["meetings-fr"]
    delete = reverse("admin:django_rt_sessions_sessionpreset_delete", args=[preset.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not SessionPreset.objects.exists()
    assert_error(post(api, {"preset": "meetings-fr"}), 404, "preset_not_found")
    assert_error(post(api), 404, "preset_not_found")  # it was the default
    assert api.get(PRESETS_URL).json()["results"] == []
    assert upstream.requests == []
    rows = list(TokenRequest.objects.order_by("pk").values_list("outcome", "preset", "preset_name"))
    assert rows == [("not_found", None, "meetings-fr"), ("not_found", None, "")]


def test_a_user_removed_from_the_group_is_forbidden_at_the_next_request(
    api: Client, user: Any, group: Any, preset: SessionPreset, upstream: Any
) -> None:
    preset.groups.add(group)
    user.groups.add(group)
    assert post(api).status_code == 201
    user.groups.remove(group)
    assert_error(post(api), 403, "preset_forbidden")
    assert api.get(PRESETS_URL).json()["results"] == []
    assert len(upstream.requests) == 1
    row = TokenRequest.objects.order_by("-pk").first()
    assert (row.outcome, row.preset, row.status_code) == ("forbidden", preset, 403)


# ------------------------------------------------------------------------------- no-store everywhere


def test_every_answer_is_no_store(
    api: Client, csrf_client: Client, preset: SessionPreset, upstream: Any
) -> None:
    response = post(api)
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    assert_error(post(api, "{"), 400, "invalid")
    assert_error(post(api, {"preset": "nope"}), 404, "preset_not_found")
    assert_error(api.get(TRANSCRIBE_URL), 405, "method_not_allowed")
    assert_error(post(Client()), 403, "not_authenticated")
    assert_error(post(csrf_client), 403, "permission_denied")
    upstream.enqueue(Error(500), Error(500), Error(500))
    assert_error(post(api), 502, "upstream_error")
    upstream.enqueue(RateLimit(retry_after=4))
    response = post(api)
    assert_error(response, 503, "upstream_unavailable")
    assert response["Retry-After"] == "4"
