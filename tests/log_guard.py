"""A suite-wide guard: no API key, no ephemeral key and no relay ticket in any log record, at any level.

`LogGuard` attaches a handler to the root logger with the root level lowered to DEBUG, keeps every record as
text (message, `repr(args)`, formatted `exc_info` and `stack_info`), and `check()` raises `SecretLogged`
naming the logger, level and kind of secret (never the secret itself) if any text holds:

- an API key in use: given explicitly, or read from `RT_SESSIONS["API_KEY"]` and the `OPENAI_API_KEY`
  environment variable at setup, at every record (a test may change them midway) and at check time;
- an ephemeral key: given explicitly (the stand-in's `issued` list), or anything shaped `ek_<16+ hex>`;
- a relay ticket: anything shaped `rts_<20+ URL-safe characters>` (a ticket is `rts_` and 43 of them).

Django is optional (the guard also runs in pytester's inner runs, where it is not configured). The conftest
wires it as an autouse fixture; `tests/test_security.py` proves it trips. `secrets_in_output()` applies the
same rules to the log output of another process (the example project at DEBUG, tests/test_example_logging.py).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

EPHEMERAL_KEY = re.compile(r"ek_[0-9a-f]{16,}")
RELAY_TICKET = re.compile(r"rts_[A-Za-z0-9_-]{20,}")
# Shorter "keys" (tests use throwaway values such as "sk-test") would match unrelated text.
MIN_SECRET_LENGTH = 8
FAILURE_TITLE = "A secret was written to the logs"


class SecretLogged(AssertionError):
    pass


def current_api_keys() -> set[str]:
    """The API keys the app would use right now (settings and environment)."""
    keys = {os.environ.get("OPENAI_API_KEY") or ""}
    try:
        from django.conf import settings

        if settings.configured:
            configured = getattr(settings, "RT_SESSIONS", None)
            if isinstance(configured, dict):
                keys.add(str(configured.get("API_KEY") or ""))
    except ImportError:  # pragma: no cover - Django is a dependency of the package
        pass
    return {key for key in keys if len(key) >= MIN_SECRET_LENGTH}


def record_text(record: logging.LogRecord) -> str:
    """Everything of a record a handler could write out."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: keep the raw parts
        message = f"{record.msg!r}"
    parts = [message, repr(record.args)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class _CollectingHandler(logging.Handler):
    def __init__(self, guard: LogGuard) -> None:
        super().__init__(level=logging.DEBUG)
        self.guard = guard

    def emit(self, record: logging.LogRecord) -> None:
        # Formatted now: args may be mutated later, and exc_info tracebacks do not outlive the test.
        self.guard.entries.append((record.name, record.levelname, record_text(record)))
        self.guard.api_keys |= current_api_keys()


class LogGuard:
    def __init__(self, secrets: Callable[[], Iterable[str]] | None = None) -> None:
        """`secrets` is called at check time for further secrets (e.g. the stand-in's issued keys)."""
        self.entries: list[tuple[str, str, str]] = []
        self.api_keys: set[str] = set()
        self._secrets = secrets
        self._handler = _CollectingHandler(self)
        self._root_level: int | None = None

    def start(self) -> LogGuard:
        root = logging.getLogger()
        self.api_keys |= current_api_keys()
        self._root_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self._handler)
        return self

    def stop(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        if self._root_level is not None:
            root.setLevel(self._root_level)

    def check(self) -> None:
        """Raise SecretLogged if a record held a secret."""
        secrets = self._secrets() if self._secrets else ()
        raise_for(secrets_found(self.entries, api_keys=self.api_keys | current_api_keys(), secrets=secrets))


# The entries are never a function argument of a frame that raises: pytest prints those arguments.


def secrets_found(
    entries: Iterable[tuple[str, str, str]], *, api_keys: Iterable[str], secrets: Iterable[str] = ()
) -> list[str]:
    """One line per (logger, level, text) entry that holds an API key (`api_keys`), an ephemeral key of
    `secrets`, or anything shaped like an ephemeral key, naming the kind of secret, never the secret."""
    named: dict[str, str] = {key: "API key" for key in api_keys if len(key) >= MIN_SECRET_LENGTH}
    for key in secrets:
        if key and len(key) >= MIN_SECRET_LENGTH:
            named.setdefault(key, "ephemeral key")
    problems = []
    for logger, level, text in entries:
        found = sorted({kind for key, kind in named.items() if key in text})
        if EPHEMERAL_KEY.search(text) and "ephemeral key" not in found:
            found.append("ephemeral key (ek_ pattern)")
        if RELAY_TICKET.search(text):
            found.append("relay ticket (rts_ pattern)")
        if found:
            shown = RELAY_TICKET.sub("rts_[…]", EPHEMERAL_KEY.sub("ek_[…]", text))
            for key in named:
                shown = shown.replace(key, "[secret]")
            problems.append(f"  {level} {logger}: {', '.join(found)} in {shown[:300]!r}")
    return problems


def secrets_in_output(
    source: str, output: str, *, api_keys: Iterable[str], secrets: Iterable[str] = ()
) -> list[str]:
    """secrets_found() for the log output of another process, one entry per line."""
    lines = ((source, f"line {number}", line) for number, line in enumerate(output.splitlines(), 1))
    return secrets_found(lines, api_keys=api_keys, secrets=secrets)


def raise_for(problems: list[str]) -> None:
    if problems:
        raise SecretLogged(f"{FAILURE_TITLE} ({len(problems)} record(s)):\n" + "\n".join(problems))


def guard_fixture_body(request: Any) -> Any:
    """The body of the conftest's autouse fixture (a generator)."""

    def issued_keys() -> list[str]:
        # The session stand-in records every key it handed out; reset() clears the list at the next test's
        # setup, so it is still complete here. Only look when the test used it (no server start otherwise).
        if "openai_standin_server" not in request.fixturenames:
            return []
        return list(request.getfixturevalue("openai_standin_server").issued)

    guard = LogGuard(issued_keys).start()
    try:
        yield guard
    finally:
        guard.stop()
    guard.check()
