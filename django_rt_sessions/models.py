"""The app's tables: presets, the audit log, daily quota counters, and relayed sessions with their tickets
(docs/presets.md, docs/audit.md, docs/relay.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .errors import Outcome
from .redaction import storable


def max_length(model: type[models.Model], field: str) -> int:
    """A column's max_length: the one number its validators and truncations use."""
    length = getattr(model._meta.get_field(field), "max_length", None)
    assert isinstance(length, int), f"{model.__name__}.{field} has no max_length"
    return length


class SessionPreset(models.Model):
    """A named upstream session configuration plus who may use it (docs/presets.md).

    `session` holds the beta endpoint's request fields (and the GA-only ones, sessions/fields.py) exactly
    as staff configured them: an absent key is not sent upstream, a key set to null is sent as null.
    `presets.validation.validate_preset` is the one validator.
    """

    name = models.SlugField(_("name"), max_length=64, unique=True)
    title = models.CharField(_("title"), max_length=200, blank=True)
    description = models.TextField(_("description"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    default = models.BooleanField(
        _("default"), default=False, help_text=_("Used when a request names no preset. At most one.")
    )
    session = models.JSONField(_("session configuration"), default=dict, blank=True)
    client_turns = models.JSONField(
        _("client turns"),
        null=True,
        blank=True,
        default=None,
        help_text=_(
            "How the browser client ends turns when the upstream detects none (null: the defaults); "
            "see docs/presets.md#client-turns."
        ),
    )
    expires_after_seconds = models.PositiveIntegerField(_("token lifetime (seconds)"), default=60)
    overridable = models.JSONField(_("user may override"), default=list, blank=True)
    daily_quota = models.PositiveIntegerField(
        _("daily quota per user"),
        null=True,
        blank=True,
        help_text=_("Sessions one user may get from this preset per day (site time zone). Empty: no quota."),
    )
    rate = models.CharField(
        _("rate limit"), max_length=32, blank=True, help_text=_("e.g. 5/m; empty uses USER_RATE.")
    )
    groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="rt_session_presets", verbose_name=_("groups")
    )
    # The relay options (docs/presets.md#relay-presets); sessions/fields.py RELAY_FIELDS describes them.
    relay = models.BooleanField(_("relay sessions"), default=False)
    max_session_seconds = models.PositiveIntegerField(_("longest session (seconds)"), default=900)
    max_concurrent_sessions = models.PositiveSmallIntegerField(_("open sessions per user"), default=1)
    daily_audio_minutes = models.FloatField(_("audio minutes per user per day"), null=True, blank=True)
    idle_timeout_seconds = models.PositiveIntegerField(_("idle timeout (seconds)"), default=60)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("last changed"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("last changed by"),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("session preset")
        verbose_name_plural = _("session presets")
        # The admin's "Issue a test token" mints a real, billed key: viewing or editing presets is not enough.
        permissions = [("issue_test_token", _("Can issue a test token"))]
        constraints = [
            # The database, not only the form, guarantees a single default preset.
            models.UniqueConstraint(
                fields=["default"],
                condition=Q(default=True),
                name="rt_sessions_single_default_preset",
                violation_error_message=_(
                    "Another preset is already the default. Untick it there, or use the “Make the selected "
                    "preset the default” action in the preset list."
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.name


# The audit trail's "who" and "which preset": SET_NULL and a denormalised name (the *_name fields beside
# them) keep a row when a user or a preset is deleted.
def _user_field(related_name: str) -> Any:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name=related_name,
        verbose_name=_("user"),
    )


def _preset_field(related_name: str) -> Any:
    return models.ForeignKey(
        SessionPreset,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name=related_name,
        verbose_name=_("preset"),
    )


class TokenRequest(models.Model):
    """One audit row per token request, whatever its outcome (docs/audit.md). Never holds a secret."""

    Outcome = Outcome  # the one list of outcomes (errors.py, beside the codes that map to them)

    class Origin(models.TextChoices):
        """Where the request came from: a staff investigation filters out the admin's test tokens."""

        API = "api", _("HTTP API")
        ADMIN = "admin", _("admin test token")
        COMMAND = "command", _("rt_sessions_issue")
        CODE = "code", _("the site's own code")

    created_at = models.DateTimeField(_("time"), auto_now_add=True)
    user = _user_field("rt_token_requests")
    username = models.CharField(_("username"), max_length=150, blank=True)
    preset = _preset_field("token_requests")
    preset_name = models.CharField(_("preset name"), max_length=64, blank=True)
    outcome = models.CharField(_("outcome"), max_length=24, choices=Outcome.choices)
    origin = models.CharField(_("origin"), max_length=16, choices=Origin.choices, default=Origin.API)
    status_code = models.PositiveSmallIntegerField(_("status code"))
    upstream = models.CharField(_("upstream"), max_length=32, blank=True)
    upstream_status = models.PositiveSmallIntegerField(_("upstream status"), null=True, blank=True)
    upstream_request_id = models.CharField(_("upstream request id"), max_length=128, blank=True)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    error_message = models.TextField(_("error message"), max_length=2000, blank=True)
    session_config = models.JSONField(_("body sent upstream"), null=True, blank=True)
    upstream_session_id = models.CharField(_("upstream session id"), max_length=128, blank=True)
    expires_at = models.DateTimeField(_("key expires at"), null=True, blank=True)
    secret_fingerprint = models.CharField(
        _("key fingerprint"), max_length=64, blank=True, help_text=_("SHA-256 hex of the ephemeral key.")
    )
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    upstream_ms = models.PositiveIntegerField(_("upstream time (ms)"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("token request")
        verbose_name_plural = _("token requests")
        indexes = [
            # The list's ordering, date filters and drill-down, prune; with outcome, the 30-day chart is
            # an index-only scan.
            models.Index(fields=["created_at", "outcome"], name="rt_tokenreq_time_outcome"),
            # The outcome filter: its count and its newest-first page.
            models.Index(fields=["outcome", "created_at"], name="rt_tokenreq_outcome_time"),
            # The origin filter (the admin's test tokens, the command's): the same.
            models.Index(fields=["origin", "created_at"], name="rt_tokenreq_origin_time"),
            # "What did this user request lately?" (investigations, the user's admin history).
            models.Index(fields=["user", "created_at"], name="rt_tokenreq_user_time"),
            # Admin search by username, which survives the user's deletion.
            models.Index(fields=["username", "created_at"], name="rt_tokenreq_username_time"),
            # "Who received this key?": lookup by SHA-256 of a leaked key. Partial: only issued rows have one.
            models.Index(
                fields=["secret_fingerprint"],
                name="rt_tokenreq_fingerprint",
                condition=~Q(secret_fingerprint=""),
            ),
            # Admin search by the ids OpenAI support and logs talk about.
            models.Index(
                fields=["upstream_session_id"],
                name="rt_tokenreq_session_id",
                condition=~Q(upstream_session_id=""),
            ),
            models.Index(
                fields=["upstream_request_id"],
                name="rt_tokenreq_request_id",
                condition=~Q(upstream_request_id=""),
            ),
        ]

    def __str__(self) -> str:
        # Never render secrets here: __str__ lands in admin pages, tracebacks and logs.
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}" if self.created_at else "-"
        return f"{self.username or '-'} {self.preset_name or '-'} {self.outcome} @ {when}"

    @classmethod
    def fit(cls, field: str, text: str) -> str:
        """`text` as the column `field` can hold it: storable, and cut to the field's max_length."""
        return storable(text)[: max_length(cls, field)]


class QuotaUsage(models.Model):
    """Today's count of a user's sessions from a preset with a daily quota (see quotas.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    preset = models.ForeignKey(SessionPreset, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("quota usage")
        verbose_name_plural = _("quota usage")
        constraints = [
            models.UniqueConstraint(fields=["user", "preset", "day"], name="rt_sessions_quota_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.preset_id} {self.day}: {self.count}"


class RelayTicket(models.Model):
    """A relay ticket (`rts_…`) as minted for a relay preset: single-use, bound to the user, the preset and
    the planned session, expiring. Only its SHA-256 is kept (like the audit row's fingerprint); redeeming
    it is one conditional UPDATE, so two connections presenting it at once cannot both open a session."""

    fingerprint = models.CharField(_("ticket fingerprint"), max_length=64, unique=True)
    session_id = models.CharField(_("relay session id"), max_length=40, unique=True)
    token_request = models.ForeignKey(
        TokenRequest, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("audit row")
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    preset = models.ForeignKey(SessionPreset, on_delete=models.CASCADE, related_name="+")
    session = models.JSONField(_("planned session"))  # the beta endpoint's vocabulary, validated
    created_at = models.DateTimeField(_("minted"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)  # the sweep deletes old ones
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)

    class Meta:
        verbose_name = _("relay ticket")
        verbose_name_plural = _("relay tickets")

    def __str__(self) -> str:
        # Never the ticket (only its fingerprint is stored anyway).
        return f"relay ticket for {self.session_id}"


class RelaySession(models.Model):
    """One accepted relay connection, written before any audio is forwarded (docs/relay.md).

    The counters are saved by the relay process at least every 5 s and at the end; a row whose process died
    is closed as `relay_lost` by the sweep, with the audio counted up to its last save.
    """

    class EndReason(models.TextChoices):
        CLIENT_CLOSED = "client_closed", _("client closed")
        SESSION_LIMIT = "session_limit", _("session limit")
        QUOTA_EXCEEDED = "quota_exceeded", _("audio minutes used up")
        IDLE = "idle", _("idle")
        ENDED_BY_STAFF = "ended_by_staff", _("ended by staff")
        UPSTREAM_CLOSED = "upstream_closed", _("upstream closed")
        UPSTREAM_ERROR = "upstream_error", _("upstream error")
        RELAY_LOST = "relay_lost", _("relay process lost")

    id = models.CharField(_("id"), max_length=40, primary_key=True)  # the 201's `id`
    token_request = models.ForeignKey(
        TokenRequest,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="relay_sessions",
        verbose_name=_("audit row"),
    )
    user = _user_field("rt_relay_sessions")
    username = models.CharField(_("username"), max_length=150, blank=True)
    preset = _preset_field("relay_sessions")
    preset_name = models.CharField(_("preset name"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    end_reason = models.CharField(_("end reason"), max_length=24, choices=EndReason.choices, blank=True)
    audio_seconds = models.FloatField(_("audio (seconds)"), default=0.0)
    upstream_audio_seconds = models.FloatField(_("upstream's audio (seconds)"), default=0.0)
    upstream_tokens = models.PositiveIntegerField(_("upstream's tokens"), default=0)
    turns = models.PositiveIntegerField(_("turns"), default=0)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    last_seen_at = models.DateTimeField(_("last saved"), default=timezone.now)
    # Where it runs: the relay process (host:pid) and that process's channel on the channel layer, which
    # staff's "End session" sends to from any host.
    relay_process = models.CharField(_("relay process"), max_length=200, blank=True)
    channel_name = models.CharField(max_length=200, blank=True)
    end_requested_at = models.DateTimeField(_("end requested"), null=True, blank=True)
    # While open, the session holds one of the preset's max_concurrent_sessions slots of its user: the
    # unique constraint below makes "at most N open" exact across hosts without a lock.
    slot = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("relay session")
        verbose_name_plural = _("relay sessions")
        permissions = [("end_relay_session", _("Can end a relay session"))]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "preset", "slot"],
                condition=Q(slot__isnull=False),
                name="rt_relay_one_session_per_slot",
            ),
        ]
        indexes = [
            # The admin's list (open first, newest first) and its 30-day minutes; a user's minutes today.
            models.Index(fields=["started_at"], name="rt_relay_started"),
            models.Index(fields=["user", "preset", "started_at"], name="rt_relay_user_day"),
            # The sweep and staff's end: the open rows only.
            models.Index(fields=["last_seen_at"], name="rt_relay_open", condition=Q(ended_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.username or '-'} {self.preset_name or '-'}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None
