"""The example project with DEBUG on and every logger at DEBUG (DJANGO_LOG_LEVEL=DEBUG), in its own process:
its whole log output goes through the suite's log guard (tests/log_guard.py), after a session that issues
keys, fails after issuance (Django's debug page, in the API and in the admin) and reads the admin pages.

The same server, on its local-memory cache, shows that a preset change made by another process (a
`manage.py rt_sessions_presets import`) is seen by the next request: the preset cache is not used there.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from django_rt_sessions.testing import OpenAIStandIn

from .example_env import clean_environ, serving
from .log_guard import raise_for, secrets_in_output
from .upstream_plugins import FAIL_PROMPT

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pw-boss-1234"
SESSION = {
    "input_audio_format": "pcm16",
    "input_audio_transcription": {"model": "gpt-live-transcribe", "prompt": ""},
}
PRESETS = [
    {"name": "dictation", "default": True, "session": SESSION, "overridable": ["language"]},
    {
        "name": "fails",
        "session": {
            **SESSION,
            "input_audio_transcription": {"model": "gpt-live-transcribe", "prompt": FAIL_PROMPT},
        },
    },
]

SERVE = """
import os
os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("rt_sessions_presets", "import", os.environ["RT_TEST_PRESETS"], verbosity=0)
get_user_model().objects.create_superuser("boss", password=os.environ["RT_TEST_PASSWORD"])
from werkzeug.serving import make_server
from example_project.wsgi import application

server = make_server("127.0.0.1", 0, application, threaded=True)
print("LISTENING", server.server_port, flush=True)
server.serve_forever()
"""


@dataclass
class Site:
    url: str
    env: dict[str, str]
    output: list[str]


@pytest.fixture
def debug_site(tmp_path: Path) -> Iterator[tuple[Site, OpenAIStandIn]]:
    presets = tmp_path / "presets.json"
    presets.write_text(json.dumps(PRESETS))
    standin = OpenAIStandIn().start()
    env = clean_environ(
        DATABASE_URL=f"sqlite:///{tmp_path / 'site.sqlite3'}",
        OPENAI_API_KEY=standin.api_key,
        OPENAI_BASE_URL=standin.base_url,
        RT_UPSTREAM="tests.upstream_plugins.FailsAfterIssuance",
        DJANGO_DEBUG="true",
        DJANGO_LOG_LEVEL="DEBUG",
        RT_TEST_PRESETS=str(presets),
        RT_TEST_PASSWORD=PASSWORD,
        PYTHONUNBUFFERED="1",
    )
    try:
        with serving(SERVE, env, what="the example project") as (url, output):
            yield Site(url, env, output), standin
    finally:
        standin.stop()


def admin_login(site: Site) -> requests.Session:
    client = requests.Session()
    client.trust_env = False  # loopback only
    page = client.get(f"{site.url}/admin/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None, page.text[:500]
    response = client.post(
        f"{site.url}/admin/login/?next=/admin/",
        data={"username": "boss", "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:500]
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    return client


def token(client: requests.Session, site: Site, body: dict[str, Any]) -> requests.Response:
    return client.post(f"{site.url}/rt/transcription-sessions/", json=body, timeout=30)


def test_no_key_in_the_debug_log_of_the_example_project(debug_site: tuple[Site, OpenAIStandIn]) -> None:
    site, standin = debug_site
    client = admin_login(site)
    issued = [token(client, site, {"language": "de"}) for _ in range(2)]
    assert [r.status_code for r in issued] == [201, 201]
    assert token(client, site, {"language": "not-a-language"}).status_code == 400

    # A failure with a key in hand: Django's debug page, plain text for the API, HTML in the admin.
    failed = token(client, site, {"preset": "fails"})
    assert failed.status_code == 500 and "failed after issuance" in failed.text
    admin = f"{site.url}/admin/django_rt_sessions"
    fails_pk = client.get(f"{admin}/sessionpreset/?q=fails", timeout=10)
    pk = re.search(r"/admin/django_rt_sessions/sessionpreset/(\d+)/change/", fails_pk.text)
    assert pk is not None
    page = client.post(
        f"{admin}/sessionpreset/{pk.group(1)}/test-token/", data={"confirm": "yes"}, timeout=30
    )
    assert page.status_code == 500 and "failed after issuance" in page.text
    for url in (f"{admin}/tokenrequest/", f"{admin}/tokenrequest/export.csv", f"{admin}/sessionpreset/"):
        assert client.get(url, timeout=10).status_code == 200, url

    assert len(standin.issued) == 4
    for response in (failed, page):
        for key in standin.issued:
            assert key not in response.text and key[3:] not in response.text

    time.sleep(0.5)  # the server's last log lines
    output = "".join(site.output)
    # Everything was logged at DEBUG, the debug pages' template context included (so the guard can trip).
    assert "DEBUG django.db.backends" in output
    assert "DEBUG django.template: Exception while resolving variable" in output
    assert "failed after issuance" in output
    raise_for(
        secrets_in_output("example project", output, api_keys=[standin.api_key], secrets=standin.issued)
    )


def test_a_change_made_by_another_process_is_seen_at_once(
    debug_site: tuple[Site, OpenAIStandIn], tmp_path: Path
) -> None:
    """Local memory (no REDIS_URL) is per process: the preset cache is not used, so nothing is stale."""
    site, _standin = debug_site
    client = admin_login(site)
    assert token(client, site, {}).status_code == 201
    assert token(client, site, {}).status_code == 201  # a cache, if used, now holds the preset
    inactive = tmp_path / "inactive.json"
    inactive.write_text(json.dumps([{**PRESETS[0], "active": False}]))
    imported = subprocess.run(  # noqa: S603  (our own interpreter and manage.py)
        [sys.executable, "manage.py", "rt_sessions_presets", "import", str(inactive)],
        cwd=ROOT,
        env=site.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    refused = token(client, site, {})
    assert (refused.status_code, refused.json()["code"]) == (404, "preset_not_found")
