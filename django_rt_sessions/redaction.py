"""What text may leave the app: no secret in a log, an error report, an audit row or a message, and no
character the database cannot store.

One rule each, used everywhere: `redact` for secrets (the logs, Django's error reports of the app's views,
upstream error messages kept in the audit), `storable` / `unstorable_reason` for text bound for the audit
table or the upstream.
"""

from __future__ import annotations

import re

from .conf import rt_settings

# Characters no string may hold anywhere: PostgreSQL cannot store NUL, and an unpaired UTF-16 surrogate
# cannot be encoded to UTF-8 (json.loads accepts "\ud800"; the upstream call or the audit row would fail).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Key-shaped tokens, even masked ("sk-...abcd"): OpenAI API keys (sk-…, sk-proj-…), restricted keys (rk-…),
# ephemeral keys (ek_…) and the relay's tickets (rts_…).
KEY_LIKE = re.compile(r"\b(?:sk|ek|rk|rts)[-_][A-Za-z0-9_\-*.]{4,}")
REDACTED = "[redacted]"
# A configured "key" shorter than this (a test placeholder) would match unrelated text.
MIN_SECRET_LENGTH = 8


def redact(text: str, *secrets: str | None) -> str:
    """`text` without the given secrets, the configured API key, or anything key-shaped."""
    for secret in (*secrets, rt_settings.API_KEY):
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    return KEY_LIKE.sub(REDACTED, text)


def storable(text: str) -> str:
    """`text` with what cannot be stored replaced by U+FFFD (for audit fields that must keep a trace)."""
    return UNSTORABLE.sub("\ufffd", text)


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be sent or stored, or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "holds a NUL character"
    return f"holds an unpaired surrogate ({ascii(found.group())[1:-1]})"
