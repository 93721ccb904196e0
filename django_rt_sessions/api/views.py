"""Thin HTTP layer over the issuing service (docs/http-api.md)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from ..issuing import IssueContext, issue_from_body
from ..issuing.payload import MAX_BODY_BYTES, RawBody, RawBodyParser
from ..presets.access import presets_for
from . import error_reports, exceptions
from .serializers import PresetSerializer


class RtSessionsView(APIView):
    """Authentication and permissions are the site's DRF defaults; only login is required here."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]  # every response is JSON, whatever the site's DRF defaults
    metadata_class = None  # OPTIONS is answered 405 like any method a view does not serve

    @property
    def allowed_methods(self) -> list[str]:
        return [method for method in super().allowed_methods if method != "OPTIONS"]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        error_reports.protect(request)  # no key in a debug page or its DEBUG logging
        return super().initialize_request(request, *args, **kwargs)

    def get_authenticators(self) -> list[Any]:
        # The site's DEFAULT_AUTHENTICATION_CLASSES read now, not APIView's class attribute (captured when
        # DRF's views module was first imported, so override_settings and reloads never reach it).
        classes: list[Any] = api_settings.DEFAULT_AUTHENTICATION_CLASSES  # type: ignore[assignment]
        return [authenticator() for authenticator in classes]

    def get_exception_handler(self):  # type: ignore[no-untyped-def]
        return exceptions.exception_handler


class PresetListView(RtSessionsView):
    def get(self, request: Request) -> Response:
        return Response({"results": PresetSerializer(presets_for(request.user), many=True).data})


@method_decorator(sensitive_variables("issued"), name="post")
class TranscriptionSessionView(RtSessionsView):
    parser_classes = [RawBodyParser]

    def post(self, request: Request) -> Response:
        context = IssueContext.from_request(request._request, request.user)
        issued = issue_from_body(context, raw_body(request))
        return Response(issued.body, status=201, headers={"Cache-Control": "no-store"})


def raw_body(request: Request) -> RawBody:
    """The body's bytes, at most MAX_BODY_BYTES (the issuing service decodes and checks them)."""
    body = request.data
    if isinstance(body, RawBody):
        return body
    # DRF skips its parsers when a body has no Content-Type; nothing has read the stream then.
    raw = request._request.read(MAX_BODY_BYTES + 1)
    return RawBody(raw, too_large=len(raw) > MAX_BODY_BYTES)


def relay_over_http(request: HttpRequest) -> JsonResponse:
    """The relay's URL reached without a WebSocket upgrade: a client error, or a proxy that sends the
    relay's path to a WSGI server (docs/deployment.md#the-relay)."""
    response = JsonResponse(
        {
            "detail": "The relay speaks WebSocket: open it with an OpenAI realtime client and a relay "
            "ticket. If a WebSocket client got this answer, the request reached a server without the "
            "relay (see the deployment guide).",
            "code": "websocket_required",
        },
        status=426,
    )
    response["Upgrade"] = "websocket"
    response["Cache-Control"] = "no-store"
    return response
