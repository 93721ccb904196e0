"""The demo page with its relay preset in headless Chromium, served by the example project's
`manage.py runserver` (Channels' daphne: the site and the relay from one process): the fake microphone's
speech comes back as live text through the relay, and Stop closes both sockets."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ..example_env import clean_environ
from ..production_support import free_port, manage, tail, wait_for
from ..realtime_support import COFFEE, DOOR, WORDS, spoken_words
from ..test_browser import completed_lines, load_home, quit_chromium, sign_in, start_chromium, text_of, wait

pytestmark = [pytest.mark.browser, pytest.mark.no_database]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, openai_standin_server: Any) -> Iterator[tuple[str, Path]]:
    """The demo under `manage.py runserver`, its upstream the test's stand-in; (its URL, its database)."""
    workdir = tmp_path_factory.mktemp("relay-demo")
    database = workdir / "demo.sqlite3"
    env = clean_environ(
        DATABASE_URL=f"sqlite:///{database}",
        OPENAI_API_KEY=openai_standin_server.api_key,
        OPENAI_BASE_URL=openai_standin_server.base_url,
        RT_DEMO_STANDIN="1",
        PYTHONUNBUFFERED="1",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "demo_setup")
    port = free_port()
    log = workdir / "runserver.log"
    with open(log, "ab") as output:
        process = subprocess.Popen(  # noqa: S603  (our interpreter, our manage.py)
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: requests.get(f"{url}/accounts/login/", timeout=5).status_code == 200,
            60,
            what=f"runserver:\n{tail(log)}",
        )
        assert "daphne" in log.read_text().lower()  # Channels' runserver, not Django's WSGI one
        yield url, database
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()


def test_the_demo_transcribes_through_the_relay_and_stop_closes_both_sockets(
    demo: tuple[str, Path], openai_standin: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from django_rt_sessions.testing.audio import from_wav, silence, to_wav

    url, database = demo
    pcm = silence(1000) + from_wav(COFFEE) + silence(1500) + from_wav(DOOR) + silence(3000)
    browser, profile = start_chromium(audio_file=to_wav(pcm, tmp_path / "speech.wav"))
    try:
        sign_in(browser, url)
        load_home(browser, url)
        Select(browser.find_element(By.ID, "preset")).select_by_value("dictation-relayed")
        browser.find_element(By.ID, "start").click()
        wait(browser, lambda d: text_of(d, "status") == "Listening: speak now.", "not listening")

        def heard(d: Any) -> bool:
            lines = [spoken_words(line) for line in completed_lines(d)]
            return any(all(w in line for w in WORDS[COFFEE]) for line in lines) and any(
                all(w in line for w in WORDS[DOOR]) for line in lines
            )

        WebDriverWait(browser, 40, poll_frequency=0.2).until(heard)
        (upstream,) = openai_standin.realtime
        assert upstream.credential == "api_key"  # the site's key, never in the browser
        assert not [r for r in openai_standin.requests if r.shape == "realtime" and "rts_" in str(r.headers)]

        browser.find_element(By.ID, "stop").click()
        assert upstream.wait_closed(10) and upstream.close_code == 1000  # the relay closed the upstream
        wait(browser, lambda d: d.find_element(By.ID, "relay-usage").is_displayed(), "no minutes shown")
        shown = text_of(browser, "relay-usage")
        assert (
            shown.startswith("This session used ")
            and "minutes of audio, metered by the site's relay" in shown
        )
        assert float(shown.split()[3]) > 0
    finally:
        quit_chromium(browser, profile)
    with contextlib.closing(sqlite3.connect(database)) as db:
        ((reason, audio),) = db.execute(
            "SELECT end_reason, audio_seconds FROM django_rt_sessions_relaysession"
        ).fetchall()
    assert reason == "client_closed" and audio > 5  # the browser closed its socket to the relay
