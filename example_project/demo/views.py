from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from .apps import speech_engine_note, standin_serves, warm_up_speech

# ISO-639-1 codes offered when a preset lets the user choose the language.
LANGUAGES = [
    ("en", "English"),
    ("fr", "French"),
    ("de", "German"),
    ("es", "Spanish"),
    ("it", "Italian"),
    ("pt", "Portuguese"),
    ("nl", "Dutch"),
    ("pl", "Polish"),
    ("sv", "Swedish"),
    ("ja", "Japanese"),
    ("zh", "Chinese"),
    ("ar", "Arabic"),
    ("hi", "Hindi"),
]


TRANSPORTS = ("auto", "webrtc", "websocket")


@login_required
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    # With the local stand-in the page uses its realtime WebSocket, which every browser reaches; its WebRTC
    # endpoint needs a browser that allows WebRTC on loopback (docs/testing.md), so it is chosen with
    # ?transport=webrtc. With OpenAI the browser client takes the first transport the session's model
    # supports.
    standin = standin_serves()
    if standin:
        warm_up_speech()
    requested = request.GET.get("transport", "")
    context = {
        "languages": LANGUAGES,
        "transport": requested if requested in TRANSPORTS else ("websocket" if standin else "auto"),
        "engine_note": speech_engine_note() if standin else "",
    }
    return render(request, "demo/home.html", context)


@login_required
def relay_usage(request: HttpRequest, session_id: str) -> JsonResponse:
    """The minutes a relayed session of this user used (the relay's row, docs/relay.md): shown by the page
    when the session ends."""
    from django_rt_sessions.models import RelaySession

    row = (
        RelaySession.objects.filter(pk=session_id, user=request.user)
        .values("audio_seconds", "ended_at", "end_reason")
        .first()
    )
    if row is None:
        return JsonResponse({"detail": "No such relay session of yours."}, status=404)
    return JsonResponse(
        {
            "audio_seconds": row["audio_seconds"],
            "ended": row["ended_at"] is not None,
            "end_reason": row["end_reason"],
        }
    )
