"""Prepare the demo: the `demo` user, the `admin` superuser and, when there are none, the example presets.

Idempotent: run it as often as you like (scripts/demo runs it on every start).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from django_rt_sessions.models import SessionPreset
from django_rt_sessions.presets.files import PresetImportError, import_presets

PRESETS_FILE = Path(__file__).resolve().parents[3] / "presets.json"

# Demo-only credentials, printed on purpose: never run this command on a real site.
DEMO_USERS = [
    # username, password, staff superuser
    ("demo", "demo", False),
    ("admin", "admin", True),
]


class Command(BaseCommand):
    help = "Create the demo-only accounts demo/demo and admin/admin and import the example presets."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        for username, password, superuser in DEMO_USERS:
            user = user_model._default_manager.filter(username=username).first()
            created = user is None
            if created:
                user = user_model(username=username)
            user.is_active = True
            user.is_staff = user.is_superuser = superuser
            if created or not user.check_password(password):
                user.set_password(password)
            user.save()
            self.stdout.write(
                f"{'Created' if created else 'Kept'} user {username!r} with password {password!r}"
                + (" (staff superuser, for the admin at /admin/)" if superuser else "")
                + "."
            )
        self.stdout.write(
            self.style.WARNING(
                "These are demo-only accounts with well-known passwords: never create them on a real site."
            )
        )

        if SessionPreset.objects.exists():
            self.stdout.write("Presets exist already; the example presets were not imported.")
            return
        try:
            report = import_presets(json.loads(PRESETS_FILE.read_text(encoding="utf-8")))
        except (OSError, ValueError, PresetImportError) as exc:
            raise CommandError(f"Could not import {PRESETS_FILE.name}: {exc}") from exc
        self.stdout.write(f"Imported the example presets: {', '.join(report['created'])}.")
