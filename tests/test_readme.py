"""The first hour of a new site owner: the README's "Install into an existing site" and the docs' quick
start, followed as written in a project fresh from `django-admin startproject`.

The code blocks are read from the documents themselves. Two things are the test's own, as they are every
site owner's: the Redis address (a private redis-server here) and the OpenAI endpoint (the stand-in, via
OPENAI_API_KEY and OPENAI_BASE_URL as the docs' `export OPENAI_API_KEY=...` line does). The site then runs
under `manage.py runserver`, and a user who is not staff logs in at its login page and gets a key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from django_rt_sessions.testing import OpenAIStandIn

from .example_env import clean_environ
from .production_support import RedisServer, free_port, redis_server_binary, wait_for

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = {"README.md": "## Install into an existing site", "docs/index.md": "## Quick start"}
README_REDIS = "redis://127.0.0.1:6379/0"
PASSWORD = "pw-first-hour-1234"


def section(document: str) -> str:
    text = (ROOT / document).read_text(encoding="utf-8")
    heading = DOCUMENTS[document]
    assert heading in text, f"{document} has no {heading!r}"
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def blocks(text: str) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S)]


def block(text: str, lang: str, first_line: str = "") -> str:
    found = [body for kind, body in blocks(text) if kind == lang and body.startswith(first_line)]
    assert len(found) == 1, f"expected one {lang} block starting with {first_line!r}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not redis_server_binary():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and redis-server is not installed")
        pytest.skip("the site the README describes needs a Redis: redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("readme-redis")).start()
    try:
        yield server.url(0)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenAIStandIn]:
    server = OpenAIStandIn().start()
    try:
        yield server
    finally:
        server.stop()


def manage(site: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(  # noqa: S603  (our interpreter, the site's manage.py)
        [sys.executable, "manage.py", *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"manage.py {' '.join(args)}:\n{completed.stdout}\n{completed.stderr}"
    return completed


def build_site(
    document: str, work: Path, redis_url: str, standin: OpenAIStandIn
) -> tuple[Path, dict[str, str]]:
    text = section(document)
    env = clean_environ(
        OPENAI_API_KEY=standin.api_key, OPENAI_BASE_URL=standin.base_url, PYTHONUNBUFFERED="1"
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("PYTHONPATH", None)
    work.mkdir(parents=True)
    subprocess.run(  # noqa: S603  (django-admin of our interpreter)
        [sys.executable, "-m", "django", "startproject", "mysite", str(work)],
        check=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    settings_block = block(text, "python", "# mysite/settings.py")
    assert README_REDIS in settings_block
    with (work / "mysite" / "settings.py").open("a", encoding="utf-8") as handle:
        handle.write("\n" + settings_block.replace(README_REDIS, redis_url))
    (work / "mysite" / "urls.py").write_text(block(text, "python", "# mysite/urls.py"), encoding="utf-8")
    if "# mysite/views.py" in text:  # the README's page: its view and its template, as pasted
        (work / "mysite" / "views.py").write_text(
            block(text, "python", "# mysite/views.py"), encoding="utf-8"
        )
        (work / "templates").mkdir()
        page = block(text, "html", "{# templates/dictation.html #}")
        (work / "templates" / "dictation.html").write_text(page, encoding="utf-8")
    presets = json.loads(block(text, "json"))
    (work / "presets.json").write_text(json.dumps(presets), encoding="utf-8")
    return work, env


def test_the_readme_has_the_two_commands_and_leaves_the_reference_to_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ("./scripts/demo", "./scripts/test"):
        assert f"```\n{command}\n```" in readme, command  # on its own line, as .ci/run calls it
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
    # The reference (settings, error codes, fields, commands) is tables in docs/, kept in one place.
    assert not re.search(r"^\|.*\|$", readme, re.M), "a table in the README: it belongs in docs/"
    for page in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / page).is_file(), page


def test_the_wheel_name_in_the_docs_is_the_version_being_built() -> None:
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    for document in DOCUMENTS:
        commands = block(section(document), "bash", "git clone")
        assert f"django_rt_sessions-{version.group(1)}-py3-none-any.whl[redis]" in commands, document


@pytest.mark.parametrize("document", list(DOCUMENTS))
def test_a_fresh_site_set_up_as_the_docs_say_issues_a_key(
    document: str, tmp_path: Path, redis_url: str, standin: OpenAIStandIn
) -> None:
    text = section(document)
    presets = json.loads(block(text, "json"))
    assert isinstance(presets, list) and [p["default"] for p in presets] == [True]
    assert all(not p.get("groups") for p in presets)
    assert {p["session"]["input_audio_transcription"]["model"] for p in presets} == {"gpt-live-transcribe"}

    site, env = build_site(document, tmp_path / "site", redis_url, standin)
    commands = [
        line.split("#")[0].split()
        for line in block(text, "bash", "export OPENAI_API_KEY").splitlines()
        if line.startswith("python manage.py ")
    ]
    assert [c[2] for c in commands] == ["migrate", "check", "rt_sessions_presets", "createsuperuser"]
    for command in commands:
        if command[2] == "createsuperuser":  # interactive: done below without prompts
            continue
        output = manage(site, env, *command[2:])
        if command[2] == "check":
            assert "System check identified no issues" in output.stdout, output.stdout + output.stderr
        if command[2] == "rt_sessions_presets":
            assert "Imported 1 preset (1 created, 0 updated)." in output.stdout
    manage(
        site,
        {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
    )
    create_user = (
        "from django.contrib.auth.models import User; User.objects.create_user('alice', password='%s')"
    )
    manage(site, env, "shell", "-c", create_user % PASSWORD)

    port = free_port()
    server = subprocess.Popen(  # noqa: S603  (our interpreter, the site's manage.py)
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=site,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    browser = requests.Session()
    browser.trust_env = False  # loopback only
    try:

        def up() -> bool:
            try:
                browser.get(f"{url}/", timeout=10)
            except requests.ConnectionError:
                assert server.poll() is None, "runserver exited"
                return False
            return True

        wait_for(up, 60, what="runserver")
        page = browser.get(f"{url}/accounts/login/?next=/rt/presets/", timeout=10)
        assert page.status_code == 200 and 'id="rt-login"' in page.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        logged_in = browser.post(
            f"{url}/accounts/login/",
            data={
                "username": "alice",
                "password": PASSWORD,
                "next": "/rt/presets/",
                "csrfmiddlewaretoken": token.group(1),
            },
            allow_redirects=False,
            timeout=10,
        )
        assert (logged_in.status_code, logged_in.headers.get("Location")) == (302, "/rt/presets/"), (
            logged_in.text[:500]
        )
        listed = browser.get(f"{url}/rt/presets/", timeout=10).json()["results"]
        assert [(p["name"], p["default"]) for p in listed] == [(presets[0]["name"], True)]
        issued = browser.post(
            f"{url}/rt/transcription-sessions/",
            json={"language": "fr"},
            headers={"X-CSRFToken": browser.cookies["csrftoken"]},
            timeout=30,
        )
        assert issued.status_code == 201, issued.text[:500]
        body = issued.json()
        assert body["client_secret"]["value"] == standin.issued[-1]
        assert body["preset"] == presets[0]["name"]
        assert body["input_audio_transcription"]["language"] == "fr"
        if document == "README.md":
            transcribe_on_the_readmes_page(
                url, standin, tmp_path
            )  # "auto": WebSocket, the stand-in is on loopback
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def transcribe_on_the_readmes_page(url: str, standin: OpenAIStandIn, work: Path) -> None:
    """The README's page, as pasted, in Chromium with a microphone that speaks: log in, land on the page
    (LOGIN_REDIRECT_URL), Start, and the sentence comes back as a line of text."""
    from django_rt_sessions.testing.audio import from_wav, silence, to_wav

    from .realtime_support import COFFEE, WORDS, has_words
    from .test_browser import By, WebDriverWait, quit_chromium, start_chromium

    microphone = to_wav(silence(1000) + from_wav(COFFEE) + silence(3000), work / "microphone.wav")
    browser, profile = start_chromium(audio_file=microphone)
    try:
        browser.get(f"{url}/accounts/login/")
        browser.find_element(By.NAME, "username").send_keys("alice")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "[type=submit]").click()
        WebDriverWait(browser, 30).until(lambda b: b.current_url == f"{url}/dictation/")
        browser.find_element(By.ID, "start").click()

        def heard(b: Any) -> bool:
            lines = [p.text for p in b.find_elements(By.CSS_SELECTOR, "#transcript p")]
            return any(has_words(line, WORDS[COFFEE]) for line in lines)

        try:
            WebDriverWait(browser, 40, poll_frequency=0.2).until(heard)
        except Exception:
            status = browser.find_element(By.ID, "status").text
            lines = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "#transcript p")]
            pytest.fail(f"no transcript on the README's page: status {status!r}, lines {lines}")
        assert standin.realtime and standin.realtime[-1].session["audio"]["input"]["turn_detection"] is None
        assert any(e.get("type") == "input_audio_buffer.commit" for e in standin.realtime[-1].received)
        browser.find_element(By.ID, "stop").click()
        assert standin.realtime[-1].wait_closed(10)
    finally:
        quit_chromium(browser, profile)


def test_a_fresh_site_without_the_shared_cache_is_told(
    tmp_path: Path, redis_url: str, standin: OpenAIStandIn
) -> None:
    """A site that skips the CACHES part keeps Django's local-memory cache: `check` says so, DEBUG or not."""
    site, env = build_site("README.md", tmp_path / "site", redis_url, standin)
    settings = site / "mysite" / "settings.py"
    settings.write_text(re.sub(r"\nCACHES = \{.*?\n\}\n", "\n", settings.read_text(), flags=re.S))
    assert "CACHES" not in settings.read_text()
    warned = manage(site, env, "check")
    assert "rt_sessions.W005" in warned.stderr + warned.stdout
    (site / "mysite" / "production.py").write_text(
        "from .settings import *\nDEBUG = False\nALLOWED_HOSTS = ['x']\n"
    )
    refused = subprocess.run(
        [sys.executable, "manage.py", "check", "--settings", "mysite.production"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1 and "rt_sessions.E007" in refused.stderr, refused.stdout + refused.stderr
