"""Thin HTTP layer over the issuing service (SPEC §4)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q
from django.http import HttpRequest
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import error_reports, http
from .errors import IssueError
from .issuing import IssueContext, issue_session, record_refusal
from .models import SessionPreset
from .parsers import MAX_BODY_BYTES, RawBody, RawBodyParser
from .serializers import PresetSerializer

FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


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

    def get_exception_handler(self):  # type: ignore[no-untyped-def]
        return http.exception_handler


class PresetListView(RtSessionsView):
    def get(self, request: Request) -> Response:
        user = request.user
        presets = (
            SessionPreset.objects.filter(active=True)
            .filter(Q(groups__isnull=True) | Q(groups__in=user.groups.all()))
            .distinct()
            .order_by("name")
        )
        return Response({"results": PresetSerializer(presets, many=True).data})


@method_decorator(sensitive_variables("issued"), name="post")
class TranscriptionSessionView(RtSessionsView):
    parser_classes = [RawBodyParser]

    def post(self, request: Request) -> Response:
        context = IssueContext.from_request(request._request, request.user)
        try:
            payload = read_json_body(request)
        except IssueError as error:
            record_refusal(context, error)
            raise
        issued = issue_session(context, payload)
        return Response(issued.body, status=201, headers={"Cache-Control": "no-store"})


def read_json_body(request: Request) -> Any:
    """The body as JSON, at most MAX_BODY_BYTES; raises IssueError("invalid") otherwise."""
    body = request.data
    if not isinstance(body, RawBody):
        # DRF skips its parsers when a body has no Content-Type; nothing has read the stream then.
        raw = request._request.read(MAX_BODY_BYTES + 1)
        body = RawBody(raw, too_large=len(raw) > MAX_BODY_BYTES)
    if body.too_large:
        raise IssueError("invalid", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    if body.media_type.split(";")[0].strip().lower() in FORM_CONTENT_TYPES:
        raise IssueError("invalid", "Send a JSON object with Content-Type: application/json.")
    if not body.raw.strip():
        return {}
    try:
        return json.loads(body.raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IssueError("invalid", "The body is not valid JSON.") from None
