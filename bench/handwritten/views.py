"""The hand-written token view: what a site owner would write instead of installing django-rt-sessions."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from bench.floor import BODY, pooled_session


@require_POST
@login_required
def token(request: HttpRequest) -> JsonResponse:
    """One ephemeral key for the logged-in user: the same upstream POST as the app's, its JSON returned."""
    upstream = pooled_session().post(
        f"{settings.OPENAI_BASE_URL}/realtime/client_secrets",
        json=BODY,
        headers={"Authorization": f"Bearer {settings.OPENAI_API_KEY}"},
        timeout=(3.05, 10),
        allow_redirects=False,
    )
    return JsonResponse(upstream.json(), status=201 if upstream.status_code == 200 else 502)
