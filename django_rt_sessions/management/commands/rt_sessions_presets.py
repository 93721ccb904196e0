from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from ...presets.files import PresetImportError, export_presets, import_presets


class Command(BaseCommand):
    help = "Export all session presets as JSON, or import (upsert by name) presets from a JSON file."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="Print all presets as a JSON list (or write them to FILE).")
        export.add_argument("file", nargs="?", help="Write here instead of standard output.")
        imp = sub.add_parser("import", help="Create or update presets from a JSON file ('-' for stdin).")
        imp.add_argument("file")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            text = json.dumps(export_presets(), indent=2, ensure_ascii=False) + "\n"
            if options.get("file"):
                self._write(options["file"], text)
            else:
                self.stdout.write(text, ending="")
            return
        data = self._read(options["file"])
        try:
            report = import_presets(data)
        except PresetImportError as exc:
            raise CommandError(str(exc)) from None
        except RecursionError:
            raise CommandError(f"{options['file']}: the JSON is nested too deeply.") from None
        for group in report["groups_created"]:
            self.stdout.write(f"Created group {group!r}.")
        for notice in report["notices"]:
            self.stdout.write(self.style.WARNING(f"Warning: {notice}"))
        count = len(report["created"]) + len(report["updated"])
        self.stdout.write(
            self.style.SUCCESS(
                ngettext("Imported %(count)d preset", "Imported %(count)d presets", count) % {"count": count}
                + f" ({len(report['created'])} created, {len(report['updated'])} updated)."
            )
        )

    def _read(self, path: str) -> Any:
        try:
            if path == "-":
                return json.load(sys.stdin)
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        except RecursionError:
            raise CommandError(f"{path}: the JSON is nested too deeply.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}.") from None

    def _write(self, path: str, text: str) -> None:
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror}.") from None
