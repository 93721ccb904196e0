"""URLs of the cost ladder (bench/ladder.py): the example project's, plus one view per rung under /ladder/.

Each rung does what the one before it does, plus one piece of the work a token request must do, and ends
with the same upstream call as the floor (bench/floor.py: the GA body, a pooled `requests.Session` per
thread). The rungs below `service` call the app's own functions for their piece, so they cost what the
app pays for it; `service` is the issuing service without DRF; the real endpoint is the last rung.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bench import floor
from django_rt_sessions.conf import rt_settings
from django_rt_sessions.errors import IssueError
from django_rt_sessions.issuing import service as issuing
from django_rt_sessions.issuing import throttling
from django_rt_sessions.models import TokenRequest
from django_rt_sessions.presets.access import check_access
from example_project.urls import urlpatterns as example_urlpatterns

PRESET = "bench"


def _forward() -> HttpResponse:
    upstream = floor.pooled_session().post(
        floor.URL, json=floor.BODY, headers=floor.HEADERS, timeout=(3.05, 10), allow_redirects=False
    )
    return HttpResponse(upstream.content, status=201, content_type="application/json")


def _denied() -> HttpResponse:
    return JsonResponse({"code": "not_authenticated"}, status=403)


@csrf_exempt
def django_only(request: HttpRequest) -> HttpResponse:
    """Django's request/response cycle with the site's middleware; nothing read from a store."""
    request.body  # noqa: B018 - read the body like every rung
    return _forward()


@csrf_exempt
def session(request: HttpRequest) -> HttpResponse:
    """+ the session is loaded (SESSION_ENGINE: cached_db reads it from Redis)."""
    request.body  # noqa: B018
    if not request.session.get("_auth_user_id"):
        return _denied()
    return _forward()


def user(request: HttpRequest) -> HttpResponse:
    """+ the user is loaded (a query), the session hash checked, CSRF and Origin checked."""
    request.body  # noqa: B018
    if not request.user.is_authenticated:
        return _denied()
    issuing._release_pooled_connections()
    return _forward()


def preset(request: HttpRequest) -> HttpResponse:
    """+ the preset is resolved and the user's access to it checked."""
    request.body  # noqa: B018
    if not request.user.is_authenticated:
        return _denied()
    try:
        resolved = issuing._resolve_preset(PRESET)
        check_access(request.user, resolved)
    except IssueError as error:
        return JsonResponse({"code": error.code}, status=error.status)
    issuing._release_pooled_connections()
    return _forward()


def _limited(request: HttpRequest) -> tuple[HttpResponse | None, object]:
    if not request.user.is_authenticated:
        return _denied(), None
    try:
        resolved = issuing._resolve_preset(PRESET)
        check_access(request.user, resolved)
        throttling.check_limits(
            request.user,
            resolved.preset,
            request,
            user_rate=rt_settings.USER_RATE,
            ip_rate=rt_settings.IP_RATE,
        )
    except IssueError as error:
        return JsonResponse({"code": error.code}, status=error.status), None
    return None, resolved.preset


def limits(request: HttpRequest) -> HttpResponse:
    """+ both rate limits are counted in the shared cache (django-ratelimit)."""
    request.body  # noqa: B018
    refused, _found = _limited(request)
    if refused is not None:
        return refused
    issuing._release_pooled_connections()
    return _forward()


def audit(request: HttpRequest) -> HttpResponse:
    """+ the audit row is written after the upstream call: all the work, by hand, without the service."""
    request.body  # noqa: B018
    refused, found = _limited(request)
    if refused is not None:
        return refused
    issuing._release_pooled_connections()
    response = _forward()
    TokenRequest.objects.create(
        user=request.user,
        username=request.user.get_username(),
        preset=found,
        preset_name=PRESET,
        upstream="openai",
        session_config=floor.BODY,
        client_ip=throttling.client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        outcome=TokenRequest.Outcome.ISSUED,
        status_code=201,
        secret_fingerprint="0" * 64,
    )
    return response


def service(request: HttpRequest) -> HttpResponse:
    """The issuing service itself (its upstream adapter, validation, signals, audit), without DRF."""
    request.body  # noqa: B018
    if not request.user.is_authenticated:
        return _denied()
    context = issuing.IssueContext.from_request(request, request.user)
    try:
        issued = issuing.issue_session(context, {"preset": PRESET})
    except IssueError as error:
        return JsonResponse({"code": error.code}, status=error.status)
    return JsonResponse(issued.body, status=201)


RUNGS = {
    "django": django_only,
    "session": session,
    "user": user,
    "preset": preset,
    "limits": limits,
    "audit": audit,
    "service": service,
}

urlpatterns = [
    *example_urlpatterns,
    *(path(f"ladder/{name}/", view, name=f"ladder-{name}") for name, view in RUNGS.items()),
]
