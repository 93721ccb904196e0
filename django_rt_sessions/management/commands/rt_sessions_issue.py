from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...errors import IssueError
from ...issuing import IssueContext, issue_session, prepare
from ...models import TokenRequest


class Command(BaseCommand):
    help = "Issue one ephemeral transcription key for a user, audited like any other request."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Username to issue the key for.")
        parser.add_argument("--preset", help="Preset name (default: the default preset).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the body that would be sent upstream; send nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(options["user"])
        except user_model.DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        if not user.is_active:
            raise CommandError(f"The user {options['user']!r} is inactive.")
        payload = {"preset": options["preset"]} if options.get("preset") else {}
        context = IssueContext(
            user=user, user_agent="manage.py rt_sessions_issue", origin=TokenRequest.Origin.COMMAND
        )
        try:
            if options["dry_run"]:
                # The same planning step as the issuance: what is printed is what would be sent.
                self.stdout.write(json.dumps(prepare(context, payload).body, indent=2))
                return
            issued = issue_session(context, payload)
        except IssueError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from None
        except ImproperlyConfigured as exc:  # --dry-run plans without the service's audit and answer
            raise CommandError(f"misconfigured: {exc}") from None
        # The operator asked for the key: it goes to this terminal only, never to a log.
        self.stdout.write(json.dumps(issued.body, indent=2))
