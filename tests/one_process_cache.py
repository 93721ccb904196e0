"""The SQLite pass's cache: Django's local-memory cache, standing for a shared one.

The suite runs in one process, so everything that uses this cache shares it; the app treats Django's own
LocMemCache as unshared (rt_sessions.E007, and the preset cache then reads the database every time), which
tests that need that behaviour configure explicitly.
"""

from django.core.cache.backends.locmem import LocMemCache


class OneProcessCache(LocMemCache):
    pass
