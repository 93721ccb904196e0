"""The relay's upstream socket: one per relayed session, on the `websockets` asyncio client, opened with the
server's credentials for the configured upstream shape (docs/relay.md#the-upstream-session).

GA (`openai`): `{BASE_URL}/realtime?intent=transcription` with `Authorization: Bearer <API key>`, then a
`session.update` carrying the planned session. Azure (and any adapter with `relay_mints_key`): an ephemeral
key minted server-side with the adapter's own call, then its socket with that key (the key carries the
session). The beta shape: the same URL with the API key and `OpenAI-Beta: realtime=v1`, then a
`transcription_session.update`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.views.decorators.debug import sensitive_variables

from ..upstreams import Upstream, UpstreamConfig
from ..upstreams.base import account_headers
from .rules import upstream_update

logger = logging.getLogger("django_rt_sessions.relay")

# Upstream events are small; OpenAI's own limit on what it sends is far below this.
MAX_MESSAGE = 16 * 1024 * 1024
CLOSE_TIMEOUT = 2.0  # seconds to wait for the upstream's close frame before dropping the connection


class _NoDebug(logging.LoggerAdapter):
    """The websockets client's logger without DEBUG: at DEBUG it logs the handshake's headers, the API key
    (Authorization) included."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_SOCKET_LOGGER = _NoDebug(logging.getLogger("django_rt_sessions.relay.upstream_socket"), {})


class UpstreamSocket:
    """One upstream connection: send text, iterate the text it sends, close it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.send = connection.send  # one attribute lookup less per forwarded frame

    async def texts(self) -> AsyncIterator[str]:
        async for message in self.connection:
            if isinstance(message, str):
                yield message

    @property
    def closed_cleanly(self) -> bool:
        """Whether the upstream ended with a normal close (1000/1001), not a failure or a drop."""
        code = self.connection.close_code
        return code in (1000, 1001)

    async def close(self) -> None:
        await self.connection.close()


def socket_url(base_url: str) -> str:
    return re.sub(r"^http", "ws", base_url) + "/realtime?intent=transcription"


@sensitive_variables("config", "headers", "minted")
async def open_upstream(
    upstream: Upstream,
    config: UpstreamConfig,
    session: dict[str, Any],
    *,
    expires_after_seconds: int,
    safety_identifier: str | None,
) -> UpstreamSocket:
    """The upstream session for `session` (the beta vocabulary, validated), open and configured.

    Raises UpstreamFailure (Azure's mint), OSError, asyncio.TimeoutError or a websockets exception.
    """
    from websockets.asyncio.client import connect

    headers: dict[str, str] = {}
    first: str | None = None
    if upstream.relay_mints_key:
        minted = await sync_to_async(upstream.create_session, thread_sensitive=False)(
            upstream.build_body(session, expires_after_seconds),
            session,
            config,
            safety_identifier=safety_identifier,
        )
        headers["Authorization"] = f"Bearer {minted.secret}"
    else:
        headers.update(upstream.auth_headers(config.api_key or ""))
        headers.update(account_headers(config, safety_identifier))
        if upstream.api == "beta":
            headers["OpenAI-Beta"] = "realtime=v1"
        first = upstream_update(session, upstream)
    connection = await connect(
        socket_url(config.base_url),
        additional_headers=headers,
        compression=None,  # base64 audio gains little; zlib would cost CPU on every frame
        max_size=MAX_MESSAGE,
        open_timeout=config.connect_timeout + config.read_timeout,
        close_timeout=CLOSE_TIMEOUT,
        logger=_SOCKET_LOGGER,
    )
    try:
        if first is not None:
            await connection.send(first)
    except BaseException:
        await asyncio.shield(connection.close())
        raise
    return UpstreamSocket(connection)
