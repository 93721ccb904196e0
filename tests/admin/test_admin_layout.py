"""The staff pages as a browser lays them out (docs/admin.md): at 1,400 px wide, beside Django's menu and
the filters, the preset list and the audit log show every column without cutting one off; the preset form
has one-line inputs for single values and folds away what a preset leaves unset."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from django_rt_sessions.models import SessionPreset, TokenRequest

# test_browser skips (or, with CI=true, fails) without Chromium, ChromeDriver or selenium.
from ..test_browser import WAIT, By, WebDriverWait, quit_chromium, start_chromium

pytestmark = [pytest.mark.browser]

COLUMNS_FIT = """
const results = document.querySelector('.results');
const visible = results.getBoundingClientRect().right;
return {
  overflow: results.scrollWidth - results.clientWidth,
  cut: [...document.querySelectorAll('#result_list thead th')]
    .filter((th) => th.getBoundingClientRect().right > visible + 1)
    .map((th) => th.innerText.trim()),
};
"""


@pytest.fixture
def wide_browser() -> Iterator[Any]:
    browser, profile = start_chromium(arguments=("--window-size=1400,1000",))
    try:
        yield browser
    finally:
        quit_chromium(browser, profile)


@pytest.fixture
def staff_pages(live_server: Any, wide_browser: Any, admin_user: Any) -> Any:
    """Rows as long as real ones get: titles, server VAD, e-mail usernames, IPv6 addresses."""
    SessionPreset.objects.create(
        name="server-turns",
        title="Server turn detection (gpt-transcribe, WebSocket)",
        default=True,
        session={
            "input_audio_transcription": {"model": "gpt-transcribe", "language": "en"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
            },
        },
        rate="5/m",
        daily_quota=50,
    )
    SessionPreset.objects.create(
        name="meetings-fr",
        title="Meetings (French)",
        session={"input_audio_transcription": {"model": "gpt-live-transcribe"}, "turn_detection": None},
        client_turns={"silence_duration_ms": 1200, "max_turn_ms": 30000},
    )
    for outcome in ("issued", "rate_limit_unavailable", "upstream_unavailable"):
        TokenRequest.objects.create(
            username="alexandra.longername@example.com",
            preset_name="server-turns",
            outcome=outcome,
            status_code=201 if outcome == "issued" else 503,
            upstream_ms=312,
            expires_at=timezone.now() + dt.timedelta(seconds=60),
            client_ip="2001:db8:85a3::8a2e:370:7334",
        )
    browser = wide_browser
    base = live_server.url.replace("localhost", "127.0.0.1")  # the address the server listens on
    browser.get(base + "/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(admin_user.username)
    browser.find_element(By.NAME, "password").send_keys("password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The login's answer sets the session cookie: a page asked for before it arrives is the login page.
    WebDriverWait(browser, WAIT).until(lambda driver: "/admin/login/" not in driver.current_url)
    return lambda path: browser.get(base + path) or browser


@pytest.mark.parametrize(
    "path", ["/admin/django_rt_sessions/sessionpreset/", "/admin/django_rt_sessions/tokenrequest/"]
)
def test_every_column_fits_at_1400_px(transactional_db: Any, staff_pages: Any, path: str) -> None:
    browser = staff_pages(path)
    assert browser.execute_script("return document.documentElement.clientWidth") >= 1380
    assert browser.find_element(By.ID, "nav-sidebar").is_displayed()  # Django's menu, open
    fit = browser.execute_script(COLUMNS_FIT)
    assert fit == {"overflow": 0, "cut": []}, fit


def test_the_preset_form_is_compact(transactional_db: Any, staff_pages: Any) -> None:
    preset = SessionPreset.objects.get(name="meetings-fr")
    browser = staff_pages(f"/admin/django_rt_sessions/sessionpreset/{preset.pk}/change/")
    language = browser.find_element(By.NAME, "language")
    assert language.tag_name == "input" and language.get_attribute("type") == "text"
    folded = browser.execute_script(
        "return [...document.querySelectorAll('fieldset.collapse')].filter((f) => {"
        "  const details = f.querySelector('details');"  # Django 5.1+; before, collapse.js adds a class
        "  return details ? !details.open : f.classList.contains('collapsed');"
        "}).map((f) => f.querySelector('h2').innerText.replace(/\\(.*\\)/, '').trim())"
    )
    # Unset here: folded away. Set here (the client turns; turn detection off): shown.
    assert {"Audio", "Server VAD settings", "Semantic VAD settings"} <= set(folded), folded
    assert not {"Transcription", "Turn detection", "Client turns"} & set(folded), folded
    assert browser.find_element(By.NAME, "client_silence_duration_ms").is_displayed()
