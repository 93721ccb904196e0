"""Authentication failures of any DRF authentication class keep DRF's status and code, as plain strings
(docs/http-api.md#errors): a single-page app must be able to tell "refresh your token" from "your fields
are wrong". Real authentication classes, not stand-ins: DRF's TokenAuthentication and
djangorestframework-simplejwt's JWTAuthentication."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.tokens import AccessToken

from django_rt_sessions.models import SessionPreset, TokenRequest

from ..conftest import PRESETS_URL, TRANSCRIBE_URL

pytestmark = pytest.mark.django_db

JWT = "rest_framework_simplejwt.authentication.JWTAuthentication"
TOKEN = "rest_framework.authentication.TokenAuthentication"


@pytest.fixture
def authenticated_by(settings: Any) -> Any:
    settings.SIMPLE_JWT = {"SIGNING_KEY": "tests-only-a-signing-key-of-32-bytes-or-more"}

    def configure(*classes: str) -> None:
        settings.REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": list(classes)}

    return configure


def send(authorization: str | None, url: str = TRANSCRIBE_URL) -> Any:
    client = Client(enforce_csrf_checks=True)  # no session: the header is all there is
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    if url == PRESETS_URL:
        return client.get(url, **headers)
    return client.post(url, data="{}", content_type="application/json", **headers)


@pytest.mark.parametrize("url", [TRANSCRIBE_URL, PRESETS_URL])
def test_an_invalid_jwt_keeps_simplejwts_status_and_code(authenticated_by: Any, url: str) -> None:
    authenticated_by(JWT)
    response = send("Bearer not-a-jwt", url)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
    }
    assert "ErrorDetail" not in response.content.decode()
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not TokenRequest.objects.exists()  # nobody was authenticated: there is no one to audit


def test_a_valid_jwt_gets_a_key(
    authenticated_by: Any, user: Any, preset: SessionPreset, upstream: Any
) -> None:
    authenticated_by(JWT)
    response = send(f"Bearer {AccessToken.for_user(user)}")
    assert response.status_code == 201, response.content
    assert TokenRequest.objects.get().user == user


def test_no_credentials_is_not_authenticated(authenticated_by: Any) -> None:
    authenticated_by(JWT)
    response = send(None)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }


def test_an_invalid_drf_token_is_authentication_failed(authenticated_by: Any, user: Any) -> None:
    authenticated_by(TOKEN)
    response = send("Token 0123456789abcdef0123456789abcdef01234567")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}
    assert response["WWW-Authenticate"] == "Token"
    assert send(f"Token {Token.objects.create(user=user).key}", PRESETS_URL).status_code == 200


def test_the_docs_error_table_lists_every_code_a_response_can_carry() -> None:
    """docs/http-api.md's table: every code of the OpenAPI description (the app's and DRF's), under its
    status, and the JWT code a single-page app must recognise."""
    from django_rt_sessions.api.openapi import ERROR_CODES

    docs = (Path(__file__).resolve().parents[2] / "docs" / "http-api.md").read_text(encoding="utf-8")
    table = docs.split("### Errors", 1)[1].split("\n\n", 2)[1]
    rows = [row.split("|")[1:3] for row in table.splitlines()[2:]]
    listed = {(status.strip(), code) for status, codes in rows for code in re.findall(r"`([a-z_]+)`", codes)}
    for status, codes in ERROR_CODES.items():
        for code in codes:
            assert any(code == c and str(status) in s for s, c in listed), (status, code)
    assert "`token_not_valid`" in table
