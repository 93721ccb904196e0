"""Rate limits (django-ratelimit) on POST transcription-sessions/: per user, per preset, per client IP,
the real Retry-After, what is audited, and failing closed when the cache breaks (docs/configuration.md,
docs/http-api.md, docs/audit.md).

Upstream calls go over a real socket to the OpenAI stand-in. django-ratelimit windows are aligned per key
(`crc32(key) % period` past each period boundary), so a test that needs several requests inside one window
first waits out a window that is about to end.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client

from django_rt_sessions.errors import ERRORS
from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.testing import Error

from ..conftest import SESSION, post, set_rt

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------------------------------- helpers


def seconds_left(value: str, period: int = 60) -> int:
    """Seconds until django-ratelimit's window for `value` ends (computed from its documented scheme)."""
    now = int(time.time())
    end = now - now % period + zlib.crc32(value.encode()) % period
    if end < now:
        end += period
    return end - now


def fresh_window(*values: str, period: int = 60, need: int = 3) -> None:
    """Make sure the windows of `values` last at least `need` more seconds (sleep past one that ends soon)."""
    for value in values:
        left = seconds_left(value, period)
        if left < need:
            time.sleep(left + 1)


def assert_rate_limited(response: Any, window_key: str | None = None) -> int:
    assert response.status_code == 429, response.content
    assert response.json() == {"detail": ERRORS["rate_limited"][2], "code": "rate_limited"}
    assert response["Cache-Control"] == "no-store"
    retry_after = response["Retry-After"]
    assert retry_after.isdigit(), retry_after
    seconds = int(retry_after)
    assert 1 <= seconds <= 60
    if window_key is not None:
        # The real time left in the key's window, not a constant.
        assert abs(seconds - max(1, seconds_left(window_key))) <= 1, (seconds, seconds_left(window_key))
    return seconds


def login(django_user_model: Any, username: str) -> tuple[Any, Client]:
    user = django_user_model.objects.create_user(username, password=f"pw-{username}")
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def other_preset(db: Any) -> SessionPreset:
    return SessionPreset.objects.create(name="other", session=dict(SESSION), overridable=["language"])


# ------------------------------------------------------------------------------------------ per user


def test_user_rate(api: Client, user: Any, preset: SessionPreset, upstream: Any, settings: Any) -> None:
    set_rt(settings, USER_RATE="3/m", IP_RATE=None)
    fresh_window(str(user.pk))
    for _ in range(3):
        assert post(api, {}).status_code == 201
    response = post(api, {})
    assert_rate_limited(response, window_key=str(user.pk))

    assert len(upstream.requests) == 3  # the refused request sent nothing upstream
    refused = TokenRequest.objects.filter(outcome="rate_limited").get()
    assert refused.status_code == 429
    assert refused.error_code == "rate_limited"
    assert (refused.username, refused.preset_name, refused.client_ip) == ("alice", "meetings-fr", "127.0.0.1")
    assert refused.upstream_status is None and refused.secret_fingerprint == ""
    assert TokenRequest.objects.filter(outcome="issued").count() == 3


def test_default_user_rate_is_ten_per_minute(
    api: Client, user: Any, preset: SessionPreset, upstream: Any
) -> None:
    fresh_window(str(user.pk), need=10)
    statuses = [post(api, {}).status_code for _ in range(11)]
    assert statuses == [201] * 10 + [429]


def test_user_limit_is_per_user(
    api: Client, user: Any, preset: SessionPreset, upstream: Any, settings: Any, django_user_model: Any
) -> None:
    set_rt(settings, USER_RATE="1/m", IP_RATE=None)
    bob, bob_client = login(django_user_model, "bob")
    fresh_window(str(user.pk), str(bob.pk))
    assert post(api, {}).status_code == 201
    assert_rate_limited(post(api, {}), window_key=str(user.pk))
    assert post(bob_client, {}).status_code == 201
    assert_rate_limited(post(bob_client, {}), window_key=str(bob.pk))


def test_user_rate_none_disables_the_user_limit(
    api: Client, user: Any, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, USER_RATE=None)  # IP_RATE stays at its default 60/m
    statuses = [post(api, {}).status_code for _ in range(12)]
    assert statuses == [201] * 12
    assert len(upstream.requests) == 12


# ---------------------------------------------------------------------------------------- per preset


def test_preset_rate_replaces_user_rate_and_is_counted_separately(
    api: Client, user: Any, preset: SessionPreset, other_preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, USER_RATE="3/m", IP_RATE=None)
    preset.rate = "2/m"
    preset.save()
    fresh_window(str(user.pk))

    assert [post(api, {"preset": "meetings-fr"}).status_code for _ in range(2)] == [201, 201]
    assert_rate_limited(post(api, {"preset": "meetings-fr"}), window_key=str(user.pk))
    # The preset's requests did not use up USER_RATE: the other preset still has its 3.
    assert [post(api, {"preset": "other"}).status_code for _ in range(3)] == [201, 201, 201]
    assert_rate_limited(post(api, {"preset": "other"}), window_key=str(user.pk))
    # ... and the other preset's requests did not touch the preset's own counter either (still refused,
    # not reset, not double-counted into a different answer).
    assert_rate_limited(post(api, {"preset": "meetings-fr"}))
    assert len(upstream.requests) == 5
    refused = TokenRequest.objects.filter(outcome="rate_limited").order_by("id")
    assert [r.preset_name for r in refused] == ["meetings-fr", "other", "meetings-fr"]


def test_preset_rate_may_be_more_generous_than_user_rate(
    api: Client, user: Any, preset: SessionPreset, other_preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, USER_RATE="1/m", IP_RATE=None)
    preset.rate = "3/m"
    preset.save()
    fresh_window(str(user.pk))
    assert [post(api, {}).status_code for _ in range(4)] == [201, 201, 201, 429]
    assert [post(api, {"preset": "other"}).status_code for _ in range(2)] == [201, 429]


# --------------------------------------------------------------------------------------------- per IP


def test_ip_rate_spans_users_on_one_address(
    api: Client, user: Any, preset: SessionPreset, upstream: Any, settings: Any, django_user_model: Any
) -> None:
    set_rt(settings, USER_RATE=None, IP_RATE="2/m")
    _, bob_client = login(django_user_model, "bob")
    fresh_window("10.0.0.1", "10.0.0.2")

    assert post(api, {}, REMOTE_ADDR="10.0.0.1").status_code == 201
    assert post(bob_client, {}, REMOTE_ADDR="10.0.0.1").status_code == 201
    assert_rate_limited(post(bob_client, {}, REMOTE_ADDR="10.0.0.1"), window_key="10.0.0.1")
    assert_rate_limited(post(api, {}, REMOTE_ADDR="10.0.0.1"), window_key="10.0.0.1")
    # Another address has its own budget, for either user.
    assert post(api, {}, REMOTE_ADDR="10.0.0.2").status_code == 201
    assert post(bob_client, {}, REMOTE_ADDR="10.0.0.2").status_code == 201

    assert len(upstream.requests) == 4
    refused = TokenRequest.objects.filter(outcome="rate_limited").order_by("id")
    assert [(r.username, r.client_ip, r.status_code) for r in refused] == [
        ("bob", "10.0.0.1", 429),
        ("alice", "10.0.0.1", 429),
    ]


def test_ipv6_addresses_share_a_limit_per_64(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    # django-ratelimit's RATELIMIT_IPV6_MASK (default /64): one host cannot dodge the limit by rotating.
    set_rt(settings, USER_RATE=None, IP_RATE="1/m")
    fresh_window("2001:db8::", "2001:db8:0:1::")
    assert post(api, {}, REMOTE_ADDR="2001:db8::1").status_code == 201
    assert_rate_limited(post(api, {}, REMOTE_ADDR="2001:db8::2"), window_key="2001:db8::")
    assert post(api, {}, REMOTE_ADDR="2001:db8:0:1::1").status_code == 201
    refused = TokenRequest.objects.get(outcome="rate_limited")
    assert refused.client_ip == "2001:db8::2"  # the audit keeps the full address


def test_forwarded_for_single_address(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_FORWARDED_FOR"
    set_rt(settings, USER_RATE=None, IP_RATE="1/m")
    fresh_window("203.0.113.7", "198.51.100.4")
    proxy = {"REMOTE_ADDR": "10.0.0.9"}
    assert post(api, {}, HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy).status_code == 201
    assert_rate_limited(post(api, {}, HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy), window_key="203.0.113.7")
    # Same proxy (REMOTE_ADDR), another client: the header decides.
    assert post(api, {}, HTTP_X_FORWARDED_FOR="198.51.100.4", **proxy).status_code == 201
    assert list(TokenRequest.objects.order_by("id").values_list("client_ip", flat=True)) == [
        "203.0.113.7",
        "203.0.113.7",
        "198.51.100.4",
    ]


def test_forwarded_for_list_uses_the_first_address(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    """X-Forwarded-For as proxies write it ("client, proxy1"): the client is the first address, for the
    limit as for the audit. Without it, every request behind a proxy chain would be refused."""
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_FORWARDED_FOR"
    set_rt(settings, USER_RATE=None, IP_RATE="2/m")
    fresh_window("203.0.113.7", "198.51.100.4")
    chain = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.0.0.8"}
    first = post(api, {}, **chain)
    assert first.status_code == 201, first.content
    assert post(api, {}, **chain).status_code == 201
    assert_rate_limited(post(api, {}, **chain), window_key="203.0.113.7")
    other = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "198.51.100.4, 10.0.0.8"}
    assert post(api, {}, **other).status_code == 201
    rows = TokenRequest.objects.order_by("id")
    assert [r.client_ip for r in rows] == ["203.0.113.7"] * 3 + ["198.51.100.4"]
    assert [r.outcome for r in rows] == ["issued", "issued", "rate_limited", "issued"]


def test_addressless_requests_share_one_ip_counter_and_are_audited_never_500(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, django_user_model: Any
) -> None:
    """A proxy header that holds no address ("unknown" is common): the audit's client_ip stays empty, never
    the raw header text (PostgreSQL's inet column would refuse it: a 500 and no row), and every such
    request counts against one shared per-IP counter, so forging the header cannot escape the IP limit."""
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_FORWARDED_FOR"
    set_rt(settings, USER_RATE=None, IP_RATE="1/m")
    fresh_window("unknown")
    assert post(api, {}, HTTP_X_FORWARDED_FOR="unknown", REMOTE_ADDR="10.0.0.9").status_code == 201
    bob = Client()
    bob.force_login(django_user_model.objects.create_user("bob"))
    assert_rate_limited(post(bob, {}, HTTP_X_FORWARDED_FOR="not-an-ip", REMOTE_ADDR="10.0.0.10"))
    assert list(TokenRequest.objects.values_list("client_ip", flat=True)) == [None, None]


# ------------------------------------------------------------------------------- what consumes the limit


def test_requests_refused_before_the_rate_limit_step_do_not_consume_it(
    api: Client, user: Any, preset: SessionPreset, upstream: Any, settings: Any, group: Group
) -> None:
    set_rt(settings, USER_RATE="2/m", IP_RATE="2/m")
    SessionPreset.objects.create(name="restricted", session=dict(SESSION)).groups.add(group)
    fresh_window(str(user.pk), "127.0.0.1")

    refusals = [
        post(api, "{not json"),
        post(api, {"bogus": 1}),
        post(api, {"preset": "no-such-preset"}),
        post(api, {"preset": "restricted"}),
        post(api, {"noise_reduction": "very_far_field"}),
        post(api, {"language": "French"}),
    ]
    assert [r.status_code for r in refusals] == [400, 400, 404, 403, 400, 400]
    # Neither the user's nor the IP's budget was touched: both requests still go through.
    assert [post(api, {}).status_code for _ in range(2)] == [201, 201]
    assert_rate_limited(post(api, {}))
    assert len(upstream.requests) == 2
    outcomes = list(TokenRequest.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == [
        "invalid",
        "invalid",
        "not_found",
        "forbidden",
        "invalid",
        "invalid",
        "issued",
        "issued",
        "rate_limited",
    ]


def test_upstream_failures_do_consume_the_limit(
    api: Client, user: Any, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    # The request reached the upstream (and cost us a call): it counts.
    set_rt(settings, USER_RATE="2/m", IP_RATE=None, MAX_RETRIES=0)
    fresh_window(str(user.pk))
    upstream.enqueue(Error(400, "invalid_value", "nope", "invalid_request_error"))
    assert post(api, {}).status_code == 502
    assert post(api, {}).status_code == 201
    assert_rate_limited(post(api, {}), window_key=str(user.pk))
    assert len(upstream.requests) == 2


# ------------------------------------------------------------------------------------- broken caches


class RaisingCache(LocMemCache):
    """A cache whose counting operations fail, as a rate-limit cache does when its server goes away."""

    def add(self, *args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("cache server went away")

    def incr(self, *args: Any, **kwargs: Any) -> int:
        raise RuntimeError("cache server went away")


class CountlessCache(LocMemCache):
    """A cache that silently fails to count (memcached-style: add refused, incr ValueError)."""

    def add(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def incr(self, *args: Any, **kwargs: Any) -> int:
        raise ValueError("key vanished")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BROKEN_CACHES = {
    "raising": lambda: {"BACKEND": f"{__name__}.RaisingCache"},
    "countless": lambda: {"BACKEND": f"{__name__}.CountlessCache"},
    "django-redis-down": lambda: {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{_closed_port()}/11",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    },
    "django-builtin-redis-down": lambda: {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{_closed_port()}/11",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    },
}


@pytest.mark.parametrize("kind", list(BROKEN_CACHES))
@pytest.mark.parametrize("rates", [("10/m", None), (None, "60/m")], ids=["user-limit", "ip-limit"])
def test_broken_cache_fails_closed(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, kind: str, rates: tuple[Any, Any]
) -> None:
    settings.CACHES = {**settings.CACHES, "ratelimit-broken": BROKEN_CACHES[kind]()}
    settings.RATELIMIT_USE_CACHE = "ratelimit-broken"
    user_rate, ip_rate = rates
    set_rt(settings, USER_RATE=user_rate, IP_RATE=ip_rate)
    response = post(api, {})
    assert response.status_code == 503, response.content
    assert response.json() == {
        "detail": "Rate limits cannot be checked right now; try again shortly.",
        "code": "rate_limit_unavailable",
    }
    assert response["Retry-After"] == "5"
    assert upstream.requests == []
    row = TokenRequest.objects.get()
    assert (row.outcome, row.status_code, row.error_code) == (
        "rate_limit_unavailable",
        503,
        "rate_limit_unavailable",
    )


@pytest.mark.parametrize("kind", ["raising", "django-redis-down"])
def test_broken_cache_fails_open_when_configured(
    api: Client,
    preset: SessionPreset,
    upstream: Any,
    settings: Any,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.CACHES = {**settings.CACHES, "ratelimit-broken": BROKEN_CACHES[kind]()}
    settings.RATELIMIT_USE_CACHE = "ratelimit-broken"
    set_rt(settings, USER_RATE="1/m", IP_RATE="1/m", RATE_LIMIT_FAIL_OPEN=True)
    assert [post(api, {}).status_code for _ in range(2)] == [201, 201]
    assert "letting the request through" in caplog.text


def test_no_limits_configured_does_not_touch_the_cache(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    settings.CACHES = {**settings.CACHES, "ratelimit-broken": {"BACKEND": f"{__name__}.RaisingCache"}}
    settings.RATELIMIT_USE_CACHE = "ratelimit-broken"
    set_rt(settings, USER_RATE=None, IP_RATE=None)
    assert post(api, {}).status_code == 201
