"""Prepare the real relay's database for one benchmark step: migrated, one relay preset, one user per session
(each may have one open session, the preset's default) and one fresh ticket per session, written to a file
for bench/relay_clients.py (--tickets).

    DJANGO_SETTINGS_MODULE=bench.real_relay.settings python bench/real_relay/tickets.py N FILE
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(count: int, output: Path) -> None:
    import psycopg
    from django.conf import settings

    cfg = settings.DATABASES["default"]
    with psycopg.connect(
        host=cfg["HOST"],
        port=cfg["PORT"] or 5432,
        user=cfg["USER"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from django_rt_sessions.issuing.service import fingerprint
    from django_rt_sessions.issuing.tickets import new_session_id, new_ticket
    from django_rt_sessions.models import RelaySession, RelayTicket, SessionPreset

    call_command("migrate", verbosity=0, interactive=False)
    RelaySession.objects.all().delete()
    RelayTicket.objects.all().delete()
    session = {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "en"},
        "turn_detection": None,
    }
    preset, _ = SessionPreset.objects.update_or_create(
        name="bench-relay",
        defaults={
            "session": session,
            "relay": True,
            "max_session_seconds": 3600,
            "idle_timeout_seconds": 600,
        },
    )
    users = get_user_model().objects
    existing = set(users.filter(username__startswith="bench-").values_list("username", flat=True))
    users.bulk_create(
        [users.model(username=f"bench-{n}") for n in range(count) if f"bench-{n}" not in existing]
    )
    by_name = dict(users.filter(username__startswith="bench-").values_list("username", "pk"))
    expires = timezone.now() + dt.timedelta(hours=1)
    secrets = [new_ticket() for _ in range(count)]
    RelayTicket.objects.bulk_create(
        RelayTicket(
            fingerprint=fingerprint(secret),
            session_id=new_session_id(),
            user_id=by_name[f"bench-{n}"],
            preset=preset,
            session=session,
            expires_at=expires,
        )
        for n, secret in enumerate(secrets)
    )
    output.write_text("\n".join(secrets) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
