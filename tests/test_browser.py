"""The demo page and the browser client (rt-sessions.js) in a real headless Chromium.

The example project runs in subprocesses (it has its own settings; the suite runs with tests.settings),
served by werkzeug with static files, on a fresh SQLite file after migrate + demo_setup. Its upstream is our
OpenAI stand-in, started here so that tests can make it misbehave, reached through a small loopback "front":
it forwards everything to the stand-in and itself serves `/v1/realtime/calls`, the WebRTC endpoint that
`connect.webrtc_url` names (the stand-in has none), recording what the browser posts there.

The WebSocket transport runs end to end against the stand-in itself: a Chromium whose fake microphone plays
recorded speech (tests/speech/), the stand-in's realtime socket and its speech engine. One more demo process
serves with its own stand-in and the speech engine hidden, as on a site without the extra.

Needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`) and selenium;
skipped without them, except with CI=true, where that is a failure. Selenium never downloads anything
(SE_OFFLINE=1 and an explicit driver path).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from .example_env import clean_environ

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

_missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - depends on the environment
    _missing.append("the selenium package (pip install 'django-rt-sessions[test]')")
if _missing:  # pragma: no cover - depends on the environment
    _reason = "browser tests need " + ", ".join(_missing) + " (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true: " + _reason, pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from django_rt_sessions.testing import (  # noqa: E402
    Delay,
    DropSocket,
    Error,
    Expired,
    Garbage,
    OpenAIStandIn,
    RateLimit,
)

from .realtime_support import COFFEE, DOOR, OPUS_WORDS, WORDS, has_words, spoken_words  # noqa: E402

pytestmark = pytest.mark.browser

# Selenium logs whole WebDriver responses at DEBUG, page text (and so the session JSON) included; the
# suite's log guard would rightly object to an ephemeral key in a log record.
logging.getLogger("selenium").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parent.parent
WAIT = 10  # seconds, for every bounded wait on the page
EXTRA_PRESETS = [
    {
        "name": "limited",
        "title": "Limited (1 a minute)",
        "session": {"input_audio_transcription": {"model": "gpt-4o-mini-transcribe"}},
        "rate": "1/m",
    },
    {
        "name": "daily-once",
        "title": "Once a day",
        "session": {"input_audio_transcription": {"model": "gpt-4o-mini-transcribe"}},
        "daily_quota": 1,
    },
    {
        # No server VAD (gpt-live-transcribe takes none): the client commits each turn.
        "name": "live",
        "title": "Live (client turns)",
        "session": {
            "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "en"},
            "turn_detection": None,
        },
    },
    {
        "name": "team-only",
        "title": "Team only",
        "session": {"input_audio_transcription": {"model": "gpt-4o-transcribe"}},
        "groups": ["transcribers"],
    },
]

SERVE = """
import importlib.abc, json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
HIDDEN = set(filter(None, os.environ.get("RT_BROWSER_HIDE", "").split(",")))

class Hide(importlib.abc.MetaPathFinder):  # a site without an optional extra
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
import django
django.setup()
from django.core.management import call_command
if os.environ.get("RT_BROWSER_SETUP"):
    call_command("migrate", interactive=False, verbosity=0)
    call_command("demo_setup", verbosity=0)
    call_command("rt_sessions_presets", "import", os.environ["RT_BROWSER_SETUP"], verbosity=0)
from django.contrib.staticfiles.handlers import StaticFilesHandler
from werkzeug.serving import WSGIRequestHandler, make_server
from example_project.wsgi import application

class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

server = make_server("127.0.0.1", 0, StaticFilesHandler(application), threaded=True, request_handler=Quiet)
print("LISTENING", server.server_port, flush=True)
server.serve_forever()
"""


# ------------------------------------------------------------------------------------------------ servers


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class Front:
    """Forwards to the stand-in; serves the WebRTC SDP endpoint itself and records what reaches it.

    Without a stand-in it is only that endpoint, at any path (tests/test_browser_client.py's WebRTC tests).
    """

    standin: OpenAIStandIn | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    # refuse: 400 JSON error; not-sdp: 201 with HTML; hold: wait for `release`; relay: put the call
    # (method, authorization, content_type, body) on `offers`, answer with what the test puts on `answers`
    mode: str = "refuse"
    release: threading.Event = field(default_factory=threading.Event)
    offers: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    answers: queue.Queue[str] = field(default_factory=queue.Queue)
    url: str = ""

    CORS = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
    }

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/v1/realtime/calls" or self.standin is None:
            response = self.sdp_endpoint(request)
        else:
            response = self.forward(request)
        return response(environ, start_response)

    def sdp_endpoint(self, request: Request) -> Response:
        self.calls.append(
            {
                "method": request.method,
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type"),
                "body": request.get_data(as_text=True),
            }
        )
        if request.method == "OPTIONS":  # the CORS preflight, as api.openai.com answers it
            return Response(status=204, headers=self.CORS)
        if self.mode == "hold":
            self.release.wait(WAIT)
        if self.mode == "relay":
            self.offers.put(self.calls[-1])
            try:
                answer = self.answers.get(timeout=WAIT)
            except queue.Empty:
                return Response("no answer", status=504, headers=self.CORS)
            return Response(answer, status=201, content_type="application/sdp", headers=self.CORS)
        if self.mode == "not-sdp":
            return Response(
                "<html>a captive portal</html>", status=201, content_type="text/html", headers=self.CORS
            )
        body = {"error": {"message": "Invalid ephemeral key.", "type": "invalid_request_error", "code": None}}
        return Response(json.dumps(body), status=400, content_type="application/json", headers=self.CORS)

    def forward(self, request: Request) -> Response:
        assert self.standin is not None
        query = request.query_string.decode()
        with requests.Session() as session:
            session.trust_env = False
            answer = session.request(
                request.method,
                self.standin.url + request.path + (f"?{query}" if query else ""),
                data=request.get_data(),
                headers={
                    k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
                },
                timeout=30,
                allow_redirects=False,
            )
        skip = {"content-length", "content-encoding", "transfer-encoding", "connection"}
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in skip]
        return Response(answer.content, status=answer.status_code, headers=headers)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoProcess:
    """The example project in a subprocess; `url` once it listens."""

    def __init__(self, env: dict[str, str]) -> None:
        base = clean_environ()
        self.process = subprocess.Popen(  # noqa: S603  (our own interpreter and script)
            [sys.executable, "-c", SERVE],
            cwd=ROOT,
            env={**base, "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = ""

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)

    def wait_listening(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while not self.url:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("the demo server did not start:\n" + "".join(self.output))
            if line.startswith("LISTENING "):
                self.url = f"http://127.0.0.1:{int(line.split()[1])}"
            elif self.process.poll() is not None and self._lines.empty():
                pytest.fail("the demo server exited:\n" + "".join(self.output))
        return self.url

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Site:
    url: str  # the demo, healthy, its upstream the stand-in behind the front (WebRTC)
    redis_down_url: str  # the same site with REDIS_URL pointing at a closed port
    database_down_url: str  # the same site with its database file unreachable
    standin_url: str  # the same site with the stand-in itself as upstream (RT_DEMO_STANDIN: WebSocket)
    no_engine_url: str  # the demo with its own stand-in (no OPENAI_API_KEY) but without the speech extra
    standin: OpenAIStandIn
    front: Front


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("browser")
    presets = tmp / "extra-presets.json"
    presets.write_text(json.dumps(EXTRA_PRESETS), encoding="utf-8")
    standin = OpenAIStandIn().start()
    front = Front(standin)
    front_server = make_server("127.0.0.1", 0, front.wsgi, threaded=True, request_handler=_QuietHandler)
    front.url = f"http://127.0.0.1:{front_server.server_port}"
    threading.Thread(target=front_server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    common = {
        "DATABASE_URL": f"sqlite:///{tmp / 'demo.sqlite3'}",
        "OPENAI_API_KEY": standin.api_key,
        "OPENAI_BASE_URL": f"{front.url}/v1",
        "RT_READ_TIMEOUT": "1.5",
        "RT_MAX_RETRIES": "0",
        "RT_USER_RATE": "1000/m",
        "RT_IP_RATE": "1000/m",
    }
    main = DemoProcess({**common, "RT_BROWSER_SETUP": str(presets)})
    processes = [main]
    try:
        main.wait_listening()  # the others share its database: start them once it is migrated
        redis_down = DemoProcess({**common, "REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"})
        database_down = DemoProcess({**common, "DATABASE_URL": f"sqlite:///{tmp / 'missing' / 'db.sqlite3'}"})
        direct = DemoProcess({**common, "OPENAI_BASE_URL": standin.base_url, "RT_DEMO_STANDIN": "1"})
        without_openai = {k: v for k, v in common.items() if not k.startswith("OPENAI_")}
        no_engine = DemoProcess({**without_openai, "RT_BROWSER_HIDE": "faster_whisper,pocketsphinx"})
        processes += [redis_down, database_down, direct, no_engine]
        yield Site(
            url=main.url,
            redis_down_url=redis_down.wait_listening(),
            database_down_url=database_down.wait_listening(),
            standin_url=direct.wait_listening(),
            no_engine_url=no_engine.wait_listening(),
            standin=standin,
            front=front,
        )
    finally:
        front.release.set()
        for process in processes:
            process.stop()
        front_server.shutdown()
        front_server.server_close()
        standin.stop()


# ------------------------------------------------------------------------------------------------ browser


def start_chromium(
    *, microphone: str = "allow", audio_file: Path | None = None, arguments: tuple[str, ...] = ()
) -> tuple[Any, str]:
    """A headless Chromium with a fake microphone whose prompt is answered "allow" or "deny"; the microphone
    plays `audio_file` (a WAV, looped) instead of Chromium's beep when given; more `arguments` if any."""
    os.environ["SE_OFFLINE"] = "1"  # selenium-manager must never download a browser or driver
    profile = tempfile.mkdtemp(prefix="rt-browser-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-ui-for-media-stream" + ("=deny" if microphone == "deny" else ""),
        "--use-fake-device-for-media-stream",
        *([f"--use-file-for-fake-audio-capture={audio_file}"] if audio_file else []),
        "--window-size=1100,900",
        f"--user-data-dir={profile}",
        *arguments,
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    browser.set_script_timeout(WAIT)
    return browser, profile


def quit_chromium(browser: Any, profile: str) -> None:
    try:
        browser.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def driver(site: Site) -> Iterator[Any]:
    browser, profile = start_chromium()
    try:
        yield browser
    finally:
        quit_chromium(browser, profile)


def wait(driver: Any, condition: Any, message: str) -> Any:
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition)
    except TimeoutException:
        pytest.fail(f"{message}; page says: {driver.find_element(By.TAG_NAME, 'body').text[:2000]}")


def text_of(driver: Any, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def load_home(driver: Any, url: str, query: str = "") -> None:
    driver.get(f"{url}/{query}")
    wait(driver, lambda d: d.find_element(By.ID, "get-session").is_enabled(), "the presets did not load")


def click_get_session(driver: Any) -> None:
    driver.execute_script(
        "const e = document.getElementById('error'); e.hidden = true; e.textContent = '';"
        "delete e.dataset.code;"
    )
    driver.find_element(By.ID, "get-session").click()


def rendered_error(driver: Any) -> tuple[str, str]:
    """(code, text) of the page's error message, once shown."""
    wait(driver, lambda d: d.find_element(By.ID, "error").is_displayed(), "no error message appeared")
    element = driver.find_element(By.ID, "error")
    return element.get_attribute("data-code"), element.text


def inject_option(driver: Any, select_id: str, value: str) -> None:
    """Select a value the page did not offer (what a stale page or a hand-edited request sends)."""
    driver.execute_script(
        "const s = document.getElementById(arguments[0]); s.add(new Option(arguments[1], arguments[1]));"
        "s.value = arguments[1]; s.dispatchEvent(new Event('change'));",
        select_id,
        value,
    )


CALL_MODULE = """
const done = arguments[arguments.length - 1];
const [moduleUrl, params] = arguments;
import(moduleUrl).then(async (rt) => {
  try {
    const session = await rt.createSession(params);
    done({ok: true, preset: session.preset});
  } catch (e) {
    done({ok: false, name: e.name, isRtError: e instanceof rt.RtSessionsError, code: e.code, status: e.status,
          retryAfter: e.retryAfter, errors: e.errors, detail: e.message});
  }
}, (e) => done({ok: false, importError: String(e)}));
"""

SHOW_ERROR = """
const [code, detail, extra] = arguments;
const error = new window.rtDemo.rt.RtSessionsError(code, detail, extra);
window.rtDemo.showError(error);
return window.rtDemo.errorMessage(error);
"""

MODULE_PATH = "/static/django_rt_sessions/rt-sessions.js"


# ------------------------------------------------------------------------------------------------- tests


@pytest.fixture(autouse=True)
def _fresh_standin(site: Site) -> Iterator[None]:
    """No misbehaviour left queued by a failed test leaks into the next one."""
    yield
    site.standin.reset()
    site.front.mode = "refuse"
    site.front.release.set()


def sign_in(driver: Any, url: str) -> None:
    """Log in as demo/demo through the login form, from the redirect the demo page answers."""
    driver.get(f"{url}/")
    assert "/accounts/login/" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys("demo")
    driver.find_element(By.NAME, "password").send_keys("demo")
    driver.find_element(By.ID, "login").click()
    wait(driver, lambda d: d.current_url.rstrip("/") == url, "the login did not land on the demo page")
    wait(driver, lambda d: d.find_element(By.ID, "get-session").is_enabled(), "the presets did not load")


@pytest.fixture
def signed_in(site: Site, driver: Any) -> Any:
    """The module's browser, signed in as demo (whichever test runs first)."""
    if driver.get_cookie("sessionid") is None:
        sign_in(driver, site.url)
    return driver


def test_log_in_get_a_session_and_count_down(site: Site, driver: Any) -> None:
    driver.delete_all_cookies()
    sign_in(driver, site.url)
    driver.get_log("browser")  # forget the login page's entries (its favicon request, say)
    load_home(driver, site.url)  # the demo page from a clean log

    assert text_of(driver, "username") == "demo"
    presets = Select(driver.find_element(By.ID, "preset"))
    names = [option.get_attribute("value") for option in presets.options]
    assert names == [
        "daily-once",
        "dictation",
        "dictation-relayed",  # the example presets' relay preset (docs/relay.md)
        "limited",
        "live",
        "meetings-fr",
        "phone-line",
        "server-turns",
    ]  # not team-only: not in the group
    assert presets.first_selected_option.get_attribute("value") == "dictation"  # the default preset
    assert driver.find_element(By.ID, "language").is_displayed()  # dictation lets the user pick the language
    assert driver.find_element(By.ID, "start").is_enabled()
    assert not driver.find_element(By.ID, "stop").is_enabled()

    Select(driver.find_element(By.ID, "language")).select_by_value("de")
    issued_before = len(site.standin.issued)
    driver.find_element(By.ID, "get-session").click()
    wait(driver, lambda d: d.find_element(By.ID, "result").is_displayed(), "no session JSON appeared")
    session = json.loads(text_of(driver, "result"))
    assert session["client_secret"]["value"] == site.standin.issued[issued_before]
    assert session["preset"] == "dictation"
    assert session["input_audio_transcription"]["language"] == "de"
    assert session["connect"]["api"] == "ga"
    assert session["connect"]["webrtc_url"] == f"{site.front.url}/v1/realtime/calls"
    assert not driver.find_element(By.ID, "error").is_displayed()

    first = text_of(driver, "countdown")
    time.sleep(1.1)
    second = text_of(driver, "countdown")
    match_first = re.fullmatch(r"expires in (\d+) s", first)
    match_second = re.fullmatch(r"expires in (\d+) s", second)
    assert match_first and match_second, (first, second)
    assert 50 <= int(match_first.group(1)) <= 60  # the dictation preset's keys live 60 s
    assert int(match_second.group(1)) < int(match_first.group(1))

    assert driver.save_screenshot(str(Path(tempfile.gettempdir()) / "rt-sessions-demo-session.png"))
    assert console_errors(driver) == []


def test_start_asks_for_the_microphone_then_posts_the_sdp_offer(site: Site, signed_in: Any) -> None:
    driver = signed_in
    # WebRTC by name: "auto" takes WebSocket first from an upstream on loopback, as this one is.
    load_home(driver, site.url, "?transport=webrtc")
    Select(driver.find_element(By.ID, "preset")).select_by_value("meetings-fr")
    site.front.calls.clear()
    site.front.mode = "refuse"
    issued_before = len(site.standin.issued)
    driver.find_element(By.ID, "start").click()

    code, text = rendered_error(driver)
    assert code == "connection_failed"
    assert text == (
        "Could not connect to the transcription service: "
        "The transcription service refused the connection (HTTP 400)."
    )
    # One session was issued for this Start, and its key went (only) to the WebRTC endpoint it names.
    assert len(site.standin.issued) == issued_before + 1
    key = site.standin.issued[-1]
    posts = [call for call in site.front.calls if call["method"] == "POST"]
    assert len(posts) == 1
    assert posts[0]["authorization"] == f"Bearer {key}"
    assert posts[0]["content_type"] == "application/sdp"
    offer = posts[0]["body"]
    assert offer.startswith("v=0\r\n")
    assert "\r\nm=audio " in offer  # the microphone track (the fake device)
    assert "\r\nm=application " in offer  # the "oai-events" data channel
    assert "a=sendrecv" in offer or "a=sendonly" in offer
    # Back to idle: Start again possible, nothing to stop.
    wait(driver, lambda d: d.find_element(By.ID, "start").is_enabled(), "Start was not re-enabled")
    assert not driver.find_element(By.ID, "stop").is_enabled()

    # A 2xx answer that is not SDP (a proxy's HTML page, say) is a clear error too, not a WebRTC exception.
    site.front.mode = "not-sdp"
    driver.find_element(By.ID, "start").click()
    wait(
        driver,
        lambda d: "did not answer with an SDP description" in d.find_element(By.ID, "error").text,
        "no error for a non-SDP answer",
    )

    # Stop while connecting: the pending exchange is abandoned without an error.
    site.front.mode = "hold"
    site.front.release.clear()
    driver.find_element(By.ID, "start").click()
    wait(
        driver,
        lambda d: d.find_element(By.ID, "status").text.startswith("Connecting"),
        "the page did not report connecting",
    )
    driver.find_element(By.ID, "stop").click()
    assert text_of(driver, "status") == "Stopped."
    site.front.release.set()
    site.front.mode = "refuse"
    assert driver.find_element(By.ID, "start").is_enabled()
    time.sleep(0.2)
    assert not driver.find_element(By.ID, "error").is_displayed()


def test_microphone_denied_asks_for_no_session(site: Site, signed_in: Any) -> None:
    driver = signed_in
    # A second browser whose (fake) permission prompt answers "deny", signed in with the same session.
    load_home(driver, site.url)
    cookies = [driver.get_cookie(name) for name in ("sessionid", "csrftoken")]
    denying, profile = start_chromium(microphone="deny")
    try:
        denying.get(f"{site.url}/accounts/login/")
        for cookie in cookies:
            denying.add_cookie({"name": cookie["name"], "value": cookie["value"], "path": "/"})
        load_home(denying, site.url)
        requests_before = len(site.standin.requests)
        denying.find_element(By.ID, "start").click()
        code, text = rendered_error(denying)
        assert code == "microphone_denied"
        assert text == (
            "Microphone access was denied. Allow the microphone for this site in your browser, "
            "then press Start again."
        )
        # The microphone comes first: refused, so no key was requested (none would expire unused).
        time.sleep(0.3)
        assert len(site.standin.requests) == requests_before
        assert denying.find_element(By.ID, "start").is_enabled()
        assert not denying.find_element(By.ID, "stop").is_enabled()
    finally:
        quit_chromium(denying, profile)


def test_every_error_code_is_rendered(site: Site, signed_in: Any) -> None:
    driver = signed_in
    load_home(driver, site.url)
    preset = Select(driver.find_element(By.ID, "preset"))

    def expect(code: str, message: str | re.Pattern[str]) -> str:
        click_get_session(driver)
        shown_code, text = rendered_error(driver)
        assert shown_code == code, text
        if isinstance(message, str):
            assert text == message
        else:
            assert message.fullmatch(text), text
        return text

    # invalid: a language that is not ISO-639-1, with the field's error.
    preset.select_by_value("dictation")
    inject_option(driver, "language", "english")
    expect("invalid", re.compile(r"The request was refused as invalid\. language: .+"))
    Select(driver.find_element(By.ID, "language")).select_by_value("")

    # preset_not_found and preset_forbidden: presets the page does not list.
    inject_option(driver, "preset", "no-such-preset")
    expect(
        "preset_not_found",
        "This preset does not exist or is no longer active. Reload the page to see the current presets.",
    )
    inject_option(driver, "preset", "team-only")
    expect("preset_forbidden", "You are not allowed to use this preset.")

    # rate_limited: the "limited" preset allows one session a minute.
    preset.select_by_value("limited")
    click_get_session(driver)
    wait(driver, lambda d: d.find_element(By.ID, "result").is_displayed(), "the first limited session failed")
    text = expect("rate_limited", re.compile(r"Too many requests: try again in (\d+) s\."))
    assert 1 <= int(re.search(r"\d+", text).group()) <= 60
    # The console log is really captured (so the normal flow's empty log means something): Chromium reports
    # the refused requests there.
    assert any("status of 429" in entry["message"] for entry in console_errors(driver))

    # quota_exceeded: the "daily-once" preset gives one session per user and day.
    preset.select_by_value("daily-once")
    click_get_session(driver)
    wait(driver, lambda d: d.find_element(By.ID, "result").is_displayed(), "the day's one session failed")
    text = expect(
        "quota_exceeded", re.compile(r"You have used today's sessions of this preset: try again in (\d+) s\.")
    )
    assert 1 <= int(re.search(r"\d+", text).group()) <= 86400

    # Upstream faults, from the stand-in (meetings-fr: no preset rate of its own).
    preset.select_by_value("meetings-fr")
    site.standin.enqueue(RateLimit(retry_after=7))
    expect("upstream_unavailable", "The transcription service is unavailable: try again in 7 s.")
    site.standin.enqueue(Error(status=429, code="insufficient_quota", type="insufficient_quota"))
    expect("upstream_unavailable", "The transcription service is unavailable: try again later.")
    site.standin.enqueue(Garbage())
    expect("upstream_error", "The transcription service could not create a session. Try again later.")
    site.standin.enqueue(Delay(3))  # READ_TIMEOUT is 1.5 s
    expect("upstream_timeout", "The transcription service did not answer in time. Try again.")

    # override_not_allowed: the page never offers it (no language picker for meetings-fr), so call the module.
    result = driver.execute_async_script(
        CALL_MODULE, MODULE_PATH, {"preset": "meetings-fr", "language": "de"}
    )
    assert result["isRtError"] and result["code"] == "override_not_allowed" and result["status"] == 400
    assert (
        driver.execute_script(SHOW_ERROR, result["code"], result["detail"], {"status": 400})
        == "This preset does not let you change that setting."
    )
    assert rendered_error(driver)[1] == "This preset does not let you change that setting."

    # permission_denied: the CSRF cookie is gone (a stale page, another site's form).
    csrf = driver.get_cookie("csrftoken")
    driver.delete_cookie("csrftoken")
    expect(
        "permission_denied",
        "The server refused the request (the page's security token may be stale). "
        "Reload the page and try again.",
    )
    driver.add_cookie({"name": "csrftoken", "value": csrf["value"], "path": "/"})

    # not_authenticated: signed out in the meantime.
    session_cookie = driver.get_cookie("sessionid")
    driver.delete_cookie("sessionid")
    expect("not_authenticated", "You are signed out. Reload the page and sign in again.")
    driver.add_cookie({"name": "sessionid", "value": session_cookie["value"], "path": "/"})
    preset.select_by_value("meetings-fr")
    click_get_session(driver)
    wait(driver, lambda d: d.find_element(By.ID, "result").is_displayed(), "signed in again, no session")

    # rate_limit_unavailable: the same site with its rate-limit cache (Redis) down refuses rather than lets
    # through.
    # The cookies of 127.0.0.1 are not per port: the same login works there.
    load_home(driver, site.redis_down_url)
    expect("rate_limit_unavailable", "Request limits cannot be checked right now: try again in 5 s.")

    # service_unavailable: the same site with its database unreachable cannot even render the page; call the
    # module from a same-origin document there, then render the error on the demo page.
    driver.get(site.database_down_url + MODULE_PATH)
    result = driver.execute_async_script(CALL_MODULE, MODULE_PATH, {"preset": "dictation"})
    assert result["isRtError"], result
    assert (result["code"], result["status"], result["retryAfter"]) == ("service_unavailable", 503, 5)
    load_home(driver, site.url)
    message = driver.execute_script(
        SHOW_ERROR, result["code"], result["detail"], {"status": 503, "retryAfter": result["retryAfter"]}
    )
    assert message == "The service is temporarily unavailable: try again in 5 s."
    assert rendered_error(driver) == ("service_unavailable", message)


def test_module_errors_carry_code_status_and_retry_after(site: Site, signed_in: Any) -> None:
    driver = signed_in
    load_home(driver, site.url)
    site.standin.enqueue(RateLimit(retry_after=11))
    result = driver.execute_async_script(CALL_MODULE, MODULE_PATH, {"preset": "meetings-fr"})
    assert result["isRtError"] and result["name"] == "RtSessionsError"
    assert (result["code"], result["status"], result["retryAfter"]) == ("upstream_unavailable", 503, 11)

    result = driver.execute_async_script(CALL_MODULE, MODULE_PATH, {"preset": "dictation", "language": "EN"})
    assert (result["code"], result["status"]) == ("invalid", 400)
    assert "language" in result["errors"]

    result = driver.execute_async_script(CALL_MODULE, MODULE_PATH, {})  # no preset: the default one
    assert result == {"ok": True, "preset": "dictation"}

    presets = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import(arguments[0]).then((rt) => rt.fetchPresets()).then((p) => done(p.map((x) => x.name)));",
        MODULE_PATH,
    )
    assert presets == [
        "daily-once",
        "dictation",
        "dictation-relayed",  # the example presets' relay preset (docs/relay.md)
        "limited",
        "live",
        "meetings-fr",
        "phone-line",
        "server-turns",
    ]


ANSWER_OFFER = """
const [offer, done] = [arguments[0], arguments[arguments.length - 1]];
const pc = new RTCPeerConnection();
window.oai = { pc, channel: null, tracks: [] };
pc.ondatachannel = (event) => { window.oai.channel = event.channel; };
pc.ontrack = (event) => { window.oai.tracks.push(event.track.kind); };
(async () => {
  await pc.setRemoteDescription({ type: "offer", sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, 3000);
  });
  done(pc.localDescription.sdp);
})().catch((error) => done("ERROR " + error));
"""


def test_transcript_events_over_a_real_webrtc_connection(site: Site, signed_in: Any) -> None:
    """A second Chromium plays OpenAI's side: it answers the page's SDP offer and sends transcription events
    on the "oai-events" data channel, over a real (loopback) WebRTC connection."""
    driver = signed_in
    # WebRTC by name: "auto" takes WebSocket first from an upstream on loopback, as this one is.
    load_home(driver, site.url, "?transport=webrtc")
    site.front.mode = "relay"
    openai, profile = start_chromium()
    try:
        openai.get(site.url + MODULE_PATH)  # any page of a potentially trustworthy origin
        driver.find_element(By.ID, "start").click()
        try:
            offer = site.front.offers.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail("the page posted no SDP offer")
        answer = openai.execute_async_script(ANSWER_OFFER, offer["body"])
        assert answer.startswith("v=0"), answer
        site.front.answers.put(answer)
        wait(
            openai,
            lambda d: d.execute_script("return !!oai.channel && oai.channel.readyState === 'open'"),
            "the data channel did not open",
        )
        assert openai.execute_script("return oai.channel.label") == "oai-events"
        assert openai.execute_script("return oai.tracks") == ["audio"]  # the (fake) microphone
        wait(
            driver, lambda d: d.find_element(By.ID, "status").text == "Listening: speak now.", "not listening"
        )
        assert not driver.find_element(By.ID, "start").is_enabled()
        assert driver.find_element(By.ID, "stop").is_enabled()

        def send(event: dict[str, Any]) -> None:
            openai.execute_script("oai.channel.send(JSON.stringify(arguments[0]))", event)

        delta = "conversation.item.input_audio_transcription.delta"
        send({"type": "input_audio_buffer.speech_started", "item_id": "item_1"})  # ignored
        send({"type": delta, "item_id": "item_1", "content_index": 0, "delta": "Bonjour "})
        send({"type": delta, "item_id": "item_1", "content_index": 0, "delta": "tout le"})
        wait(driver, lambda d: text_of(d, "transcript") == "Bonjour tout le", "the deltas were not shown")
        assert driver.find_element(By.ID, "item-item_1").get_attribute("class") == "partial"
        send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_1",
                "content_index": 0,
                "transcript": "Bonjour tout le monde.",
            }
        )
        send({"type": delta, "item_id": "item_2", "content_index": 0, "delta": "Deuxième"})
        wait(
            driver,
            lambda d: text_of(d, "transcript") == "Bonjour tout le monde.\nDeuxième",
            "the completed segment was not shown",
        )
        assert driver.find_element(By.ID, "item-item_1").get_attribute("class") == ""
        send(
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "Audio buffer too small."},
            }
        )
        code, text = rendered_error(driver)
        assert (code, text) == (
            "realtime_error",
            "The transcription service reported an error: Audio buffer too small.",
        )

        driver.find_element(By.ID, "stop").click()
        assert text_of(driver, "status") == "Stopped."
        wait(
            openai,
            lambda d: d.execute_script("return oai.channel.readyState") == "closed",
            "Stop did not close the connection",
        )
        assert driver.find_element(By.ID, "start").is_enabled()
    finally:
        quit_chromium(openai, profile)


# ---------------------------------------------------------------------------------------- WebSocket transport


@pytest.fixture(scope="module")
def speaking_driver(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Chromium whose microphone says the two test sentences, then nothing (Chromium loops the file)."""
    from django_rt_sessions.testing.audio import from_wav, silence, to_wav

    pcm = silence(1000) + from_wav(COFFEE) + silence(1500) + from_wav(DOOR) + silence(3000)
    wav = to_wav(pcm, tmp_path_factory.mktemp("microphone") / "speech.wav")
    browser, profile = start_chromium(audio_file=wav)
    try:
        sign_in(browser, site.url)
        yield browser
    finally:
        quit_chromium(browser, profile)


WATCH_TRANSCRIPT = """
window.seen = { partial: [], completed: [] };
new MutationObserver(() => {
  for (const line of document.querySelectorAll("#transcript p")) {
    const bucket = line.className === "partial" ? window.seen.partial : window.seen.completed;
    if (line.textContent && !bucket.includes(line.textContent)) bucket.push(line.textContent);
  }
}).observe(document.getElementById("transcript"), { childList: true, subtree: true, characterData: true,
                                                    attributes: true });
"""


def completed_lines(driver: Any) -> list[str]:
    return [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#transcript p:not(.partial)") if p.text]


def test_websocket_transport_transcribes_the_microphone(site: Site, speaking_driver: Any) -> None:
    driver = speaking_driver
    load_home(driver, site.standin_url)
    driver.get_log("browser")  # forget earlier pages' entries (the login page's favicon request)
    assert (
        text_of(driver, "engine") == "Transcribed by the local speech engine (English), offline: not OpenAI."
    )
    assert driver.execute_script("return window.rtDemo.transport") == "websocket"
    driver.execute_script(WATCH_TRANSCRIPT)
    driver.find_element(By.ID, "start").click()
    wait(driver, lambda d: text_of(d, "status") == "Listening: speak now.", "not listening")

    def heard(d: Any) -> bool:
        lines = [spoken_words(line) for line in completed_lines(d)]
        return any(all(w in line for w in WORDS[COFFEE]) for line in lines) and any(
            all(w in line for w in WORDS[DOOR]) for line in lines
        )

    try:
        WebDriverWait(driver, 30, poll_frequency=0.1).until(heard)  # the sentences take ~8 s to say
    except TimeoutException:
        connection = site.standin.realtime[-1] if site.standin.realtime else None
        pytest.fail(
            f"the transcript did not come: {completed_lines(driver)}; "
            f"events: {[e.get('transcript', e['type']) for e in connection.sent] if connection else None}"
        )
    seen = driver.execute_script("return window.seen")
    assert seen["partial"], "no live delta was shown before the completed lines"
    # docs/demo-page.png (the live transcript) is refreshed only with RT_UPDATE_SCREENSHOT=1: test runs
    # leave the tree clean.
    if os.environ.get("RT_UPDATE_SCREENSHOT"):
        target = ROOT / "docs" / "demo-page.png"
    else:
        target = Path(tempfile.gettempdir()) / "rt-sessions-demo-page.png"
    driver.execute_script("document.getElementById('transcript').scrollIntoView({block: 'center'})")
    assert driver.save_screenshot(str(target))

    connection = site.standin.realtime[-1]
    assert connection.credential == "ephemeral_key" and connection.subprotocol == "realtime"
    upgrade = next(r for r in reversed(site.standin.requests) if r.shape == "realtime")
    key = site.standin.issued[-1]
    assert upgrade.headers["sec-websocket-protocol"] == f"realtime, openai-insecure-api-key.{key}"
    assert "authorization" not in upgrade.headers
    # Audio, 100 ms of PCM16 at 24 kHz each, and the ends of the turns: the dictation preset has no server
    # turn detection (gpt-live-transcribe), so the client commits them. No session.update: the session is the
    # key's.
    kinds = {event["type"] for event in connection.received}
    assert kinds <= {"input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear"}
    assert "input_audio_buffer.commit" in kinds
    appends = [event for event in connection.received if event["type"] == "input_audio_buffer.append"]
    assert {event["audio_bytes"] for event in appends} == {4800}

    driver.find_element(By.ID, "stop").click()
    assert text_of(driver, "status") == "Stopped."
    assert connection.wait_closed(WAIT), "Stop did not close the socket"
    assert connection.close_code == 1000
    appended = len(connection.received)
    time.sleep(0.5)
    assert len(connection.received) == appended  # no audio after Stop
    assert driver.execute_script("return window.rtDemo.running()") is None
    assert driver.find_element(By.ID, "start").is_enabled()
    assert not driver.find_element(By.ID, "error").is_displayed()
    assert console_errors(driver) == []


def test_server_turn_detection_over_websocket_transcribes_the_microphone(
    site: Site, speaking_driver: Any
) -> None:
    """The demo's gpt-transcribe preset: OpenAI's server VAD ends the turns, the client commits none."""
    driver = speaking_driver
    load_home(driver, site.standin_url)
    Select(driver.find_element(By.ID, "preset")).select_by_value("server-turns")
    connections_before = len(site.standin.realtime)
    driver.find_element(By.ID, "start").click()
    wait(driver, lambda d: text_of(d, "status") == "Listening: speak now.", "not listening")

    def heard(d: Any) -> bool:
        lines = [spoken_words(line) for line in completed_lines(d)]
        return any(all(w in line for w in WORDS[COFFEE]) for line in lines) and any(
            all(w in line for w in WORDS[DOOR]) for line in lines
        )

    try:
        WebDriverWait(driver, 30, poll_frequency=0.1).until(heard)
    except TimeoutException:
        pytest.fail(f"the transcript did not come: {completed_lines(driver)}")
    connection = site.standin.realtime[-1]
    assert len(site.standin.realtime) == connections_before + 1
    assert connection.session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert connection.session["audio"]["input"]["transcription"]["model"] == "gpt-transcribe"
    kinds = {event["type"] for event in connection.received}
    assert kinds == {"input_audio_buffer.append"}  # the server's VAD cut the turns: no commit from the client
    assert "input_audio_buffer.speech_stopped" in connection.sent_types()
    driver.find_element(By.ID, "stop").click()
    assert connection.wait_closed(WAIT), "Stop did not close the socket"


def test_websocket_error_paths_are_rendered(site: Site, speaking_driver: Any) -> None:
    driver = speaking_driver
    load_home(driver, site.standin_url)

    def start_and_expect(code: str, message: str) -> None:
        driver.find_element(By.ID, "start").click()
        assert rendered_error(driver) == (code, message)
        wait(driver, lambda d: d.find_element(By.ID, "start").is_enabled(), "Start was not re-enabled")

    # The upstream hands out a key that has already expired: the page does not even try it.
    connections = len(site.standin.realtime)
    site.standin.enqueue(Expired())
    start_and_expect(
        "session_expired", "The session's key expired before the connection was made. Press Start again."
    )
    assert len(site.standin.realtime) == connections
    # The upgrade is refused (the stand-in answers 401 as for an invalid key): a browser learns no status.
    site.standin.enqueue(
        Delay(0), Error(status=401, code="invalid_api_key", message="Incorrect API key provided.")
    )
    start_and_expect(
        "connection_failed",
        "Could not connect to the transcription service: The transcription service refused the connection.",
    )
    # The socket drops after session.created.
    site.standin.enqueue(DropSocket(after_events=1))
    driver.find_element(By.ID, "start").click()
    assert rendered_error(driver) == (
        "connection_failed",
        "Could not connect to the transcription service: The connection was lost.",
    )


def test_without_the_speech_extra_the_page_says_so(site: Site, speaking_driver: Any) -> None:
    driver = speaking_driver
    load_home(driver, site.no_engine_url)
    note = text_of(driver, "engine")
    assert note.startswith("Transcribed by the local speech engine (English), which is not available here:")
    assert 'pip install "django-rt-sessions[standin-speech]"' in note
    driver.find_element(By.ID, "start").click()
    code, text = rendered_error(driver)
    assert code == "realtime_error"
    assert text.startswith("The transcription service reported an error: The stand-in's speech engine is not")
    assert 'pip install "django-rt-sessions[standin-speech]"' in text
    driver.find_element(By.ID, "stop").click()


TRANSPORT_RULES = """
const [moduleUrl, done] = [arguments[0], arguments[arguments.length - 1]];
import(moduleUrl).then(async (rt) => {
  const pick = (transports, requested) => {
    try {
      return rt.chooseTransport({ transports }, requested);
    } catch (e) {
      return e.code + ": " + e.message;
    }
  };
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  let refused;
  try {
    await rt.connectTranscription({
      client_secret: { value: "ek_not_sent", expires_at: Date.now() / 1000 + 60 },
      connect: { api: "ga", websocket_url: "ws://transcription.example/v1/realtime",
                 transports: ["websocket"] },
    }, stream, {});
  } catch (e) {
    refused = e.code + ": " + e.message;
  }
  stream.getTracks().forEach((t) => t.stop());
  done({
    auto: pick(["webrtc", "websocket"]),
    websocketOnly: pick(["websocket"]),
    olderServer: pick(undefined),
    forcedWebrtc: pick(["websocket"], "webrtc"),
    allowed: ["wss://api.openai.com/v1/realtime", "ws://127.0.0.1:8765/v1/realtime", "ws://localhost:1/x",
              "ws://[::1]:2/x", "ws://transcription.example/x", "http://127.0.0.1/x"].map(rt.websocketUrlAllowed),
    refused,
  });
}, (e) => done({ importError: String(e) }));
"""


def test_transport_choice_and_the_wss_rule(site: Site, signed_in: Any) -> None:
    driver = signed_in
    load_home(driver, site.url)
    result = driver.execute_async_script(TRANSPORT_RULES, MODULE_PATH)
    assert result == {
        "auto": "webrtc",
        "websocketOnly": "websocket",  # gpt-transcribe
        "olderServer": "webrtc",
        "forcedWebrtc": "connection_failed: "
        "The session's model cannot be used over webrtc (it offers: websocket).",
        "allowed": [True, True, True, True, False, False],
        # Refused before any socket is opened, so the key goes nowhere.
        "refused": "connection_failed: The transcription service's WebSocket address is not encrypted "
        "(wss: is required except on this computer).",
    }


# ------------------------------------------------------------------------------------------ WebRTC transport

# What Chromium needs to reach a WebRTC peer on loopback (the stand-in's): loopback candidates of its own,
# which it gathers only when allowed. Without it, its checks come from its network address, which a peer on
# loopback does not answer. Hiding local addresses behind mDNS names does not matter: the browser client
# posts its offer before gathering, so the offer names no address (docs/testing.md).
WEBRTC_ON_LOOPBACK = ("--allow-loopback-in-peer-connection",)
SPOKEN = 1000, 3000  # ms of silence before and after the sentence the microphone says (looped)


@pytest.fixture(scope="module")
def webrtc_driver(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int]]:
    """A Chromium that may use WebRTC on loopback, whose microphone says the coffee sentence, then nothing
    (looped); and the length of that loop in bytes of 24 kHz PCM16."""
    from django_rt_sessions.testing.audio import from_wav, silence, to_wav

    pcm = silence(SPOKEN[0]) + from_wav(COFFEE) + silence(SPOKEN[1])
    wav = to_wav(pcm, tmp_path_factory.mktemp("microphone") / "coffee.wav")
    browser, profile = start_chromium(audio_file=wav, arguments=WEBRTC_ON_LOOPBACK)
    try:
        sign_in(browser, site.url)
        yield browser, len(pcm)
    finally:
        quit_chromium(browser, profile)


def test_webrtc_transport_transcribes_the_microphone_through_the_standins_peer(
    site: Site, webrtc_driver: tuple[Any, int]
) -> None:
    """The demo page with the WebRTC transport forced, against the stand-in's own WebRTC endpoint (another
    origin: a CORS preflight first) and its aiortc peer: the Opus microphone track is transcribed."""
    driver, _loop_bytes = webrtc_driver
    driver.get(f"{site.standin_url}/?transport=webrtc")
    wait(driver, lambda d: d.find_element(By.ID, "get-session").is_enabled(), "the presets did not load")
    driver.get_log("browser")
    assert driver.execute_script("return window.rtDemo.transport") == "webrtc"
    Select(driver.find_element(By.ID, "preset")).select_by_value("live")
    calls_before = len(site.standin.realtime)
    driver.find_element(By.ID, "start").click()
    wait(driver, lambda d: text_of(d, "status") == "Listening: speak now.", "not listening")
    wait(driver, lambda d: len(site.standin.realtime) > calls_before, "no call reached the stand-in")
    call = site.standin.realtime[-1]
    assert call.transport == "webrtc" and call.credential == "ephemeral_key"

    # The live preset has no server turn detection: the browser client's own detector commits the turn after
    # the sentence's silence, over the data channel.
    def heard(d: Any) -> bool:
        return any(has_words(line, OPUS_WORDS[COFFEE]) for line in completed_lines(d))

    try:
        WebDriverWait(driver, WAIT, poll_frequency=0.1).until(heard)
    except TimeoutException:
        pytest.fail(f"no completed line: {completed_lines(driver)}; events: {call.sent_types()}")
    assert any(event.get("type") == "input_audio_buffer.commit" for event in call.received)
    assert call.session["audio"]["input"]["turn_detection"] is None
    assert call.audio_bytes_received > 0
    assert call.sent_types()[0] == "session.created"

    # The exchange, as the stand-in saw it: the preflight, then the offer with the key.
    key = site.standin.issued[-1]
    offers = [r for r in site.standin.requests if r.shape == "webrtc"]
    assert [r.method for r in offers[-2:]] == ["OPTIONS", "POST"]
    assert offers[-1].headers["authorization"] == f"Bearer {key}"
    assert offers[-1].headers["content-type"] == "application/sdp"
    assert offers[-1].headers["origin"] == site.standin_url

    driver.find_element(By.ID, "stop").click()
    assert text_of(driver, "status") == "Stopped."
    assert call.wait_closed(WAIT), "Stop did not end the call"
    assert console_errors(driver) == []
