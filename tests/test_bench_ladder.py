"""The cost ladder's views (bench/ladder_urls.py) do what bench/ladder.py says they measure.

bench/ladder.py checks each rung once before it measures; these tests keep the rungs working when the
app's functions they call change, and check that each rung does its piece (a refusal where its piece
refuses), through Django's stack against the OpenAI stand-in.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from bench import floor
from django_rt_sessions.models import SessionPreset, TokenRequest

from .conftest import SESSION

SIGNED_IN_RUNGS = ("user", "preset", "limits", "audit", "service")


@pytest.fixture
def ladder(settings: Any, upstream: Any, monkeypatch: pytest.MonkeyPatch, db: Any) -> Any:
    settings.ROOT_URLCONF = "bench.ladder_urls"
    # The rungs below `service` make the floor's call: point it at the stand-in, with its key.
    monkeypatch.setattr(floor, "URL", f"{upstream.base_url}/realtime/client_secrets")
    monkeypatch.setattr(floor, "HEADERS", {**floor.HEADERS, "Authorization": f"Bearer {upstream.api_key}"})
    SessionPreset.objects.create(name="bench", default=True, session=SESSION, overridable=[])
    return upstream


def rung(client: Client, name: str) -> Any:
    return client.post(f"/ladder/{name}/", data="{}", content_type="application/json")


@pytest.mark.parametrize("name", ("django", "session", *SIGNED_IN_RUNGS))
def test_each_rung_hands_out_a_key(ladder: Any, api: Client, name: str) -> None:
    response = rung(api, name)
    assert response.status_code == 201, response.content
    body = response.json()
    assert str((body.get("client_secret") or body)["value"]).startswith("ek_")


@pytest.mark.parametrize("name", ("session", *SIGNED_IN_RUNGS))
def test_rungs_from_session_on_refuse_an_anonymous_client(ladder: Any, client: Client, name: str) -> None:
    assert rung(client, name).status_code == 403
    assert ladder.requests == []


@pytest.mark.parametrize("name", SIGNED_IN_RUNGS)
def test_rungs_from_user_on_check_csrf(ladder: Any, csrf_client: Client, name: str) -> None:
    assert rung(csrf_client, name).status_code == 403


@pytest.mark.parametrize("name", ("preset", "limits", "audit", "service"))
def test_rungs_from_preset_on_check_access(ladder: Any, api: Client, group: Any, name: str) -> None:
    SessionPreset.objects.get(name="bench").groups.add(group)
    assert rung(api, name).status_code == 403
    assert ladder.requests == []


def test_the_limits_rung_counts(ladder: Any, api: Client, settings: Any) -> None:
    settings.RT_SESSIONS = {**settings.RT_SESSIONS, "USER_RATE": "1/m"}
    assert rung(api, "limits").status_code == 201
    assert rung(api, "limits").status_code == 429


@pytest.mark.parametrize(("name", "rows"), [("limits", 0), ("audit", 1), ("service", 1)])
def test_the_audit_row_starts_at_the_audit_rung(ladder: Any, api: Client, name: str, rows: int) -> None:
    assert rung(api, name).status_code == 201
    assert TokenRequest.objects.filter(outcome="issued").count() == rows
