"""A runnable site that uses django-rt-sessions: `./scripts/demo` serves it (see the README)."""
