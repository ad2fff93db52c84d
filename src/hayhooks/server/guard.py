"""The edge of the server, as one ASGI middleware: CORS, API keys, the MCP ``Origin`` check and
request size limits.

It runs before any route (the raw-ASGI MCP endpoints and unknown paths included), so a refused
request costs no body read and no route work, and it reads the request's headers once: a plain
API call (no ``Origin``, no keys configured) pays a header scan and a path lookup. Who may do what
is decided in ``hayhooks.security``; this module only applies it and renders refusals (OpenAI's
error shape on OpenAI routes). ``hayhooks.server.protection.install_security`` installs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hayhooks.observability.context import current_request_id
from hayhooks.openai.convert import error_body
from hayhooks.security import Caller, api_key_valid, mcp_origin_allowed
from hayhooks.server.cors import CORSPolicies
from hayhooks.server.paths import RouteKind, is_openai_path, route_kind, route_path
from hayhooks.settings import HayhooksSettings

log = logging.getLogger("hayhooks")


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    message: str,
    openai_code: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer ``{"detail": ...}``, or OpenAI's ``{"error": {...}}`` on OpenAI routes, and log one line."""
    path = route_path(scope)
    if is_openai_path(path):
        kind = "authentication_error" if status == 401 else "invalid_request_error"
        body: dict[str, Any] = error_body(message, kind, openai_code)
    else:
        body = {"detail": message}
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    log.info("%s %s -> %s: %s", scope.get("method"), path[:200], status, message)
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


# The headers the access rules read (API keys, MCP Origin): the rest is never decoded.
_CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key", b"origin", b"host"})


def _scan(scope: Scope) -> tuple[bytes | None, bytes, bool]:
    """(Content-Length, Content-Type, has Origin): one pass over the headers on the hot path."""
    length: bytes | None = None
    content_type = b""
    origin = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == b"content-type":
            content_type = value
        elif name == b"origin":
            origin = True
    return length, content_type, origin


class _BodyTooLarge(Exception):
    pass


class Edge:
    """CORS (per route kind, ``hayhooks.server.cors``) → access rules → body size limits → app.

    - Serving routes need an API key when ``HAYHOOKS_API_KEYS`` is set; deploy routes are left to
      their own guard (``hayhooks.security.authorize_deploy``): an API key never deploys.
      ``/metrics`` needs a key unless the settings say ``metrics_public``.
    - MCP transports get the MCP specification's ``Origin`` check (403).
    - Bodies over ``HAYHOOKS_MAX_REQUEST_BYTES`` (multipart: ``HAYHOOKS_MAX_UPLOAD_BYTES``) get 413:
      a declared ``Content-Length`` before one byte is read, a chunked body as it streams in; the
      connection is closed, so the rest of an over-large body is never buffered.
    """

    def __init__(self, app: ASGIApp, settings: HayhooksSettings, public_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.settings = settings
        self.public_paths = frozenset(public_paths)
        self.keyed: set[RouteKind] = {"serving", "mcp"}
        if settings.protect_docs:
            self.keyed.add("docs")
        if not getattr(settings, "metrics_public", False):
            self.keyed.add("metrics")
        self.cors = CORSPolicies(self._guarded, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            # A cacheable answer (CORS adds ``Vary: Origin``) or a preflight.
            await self.cors.for_kind(route_kind(route_path(scope)))(scope, receive, send)
            return
        length, content_type, browser = _scan(scope)
        if browser:  # an Origin header: a browser's request
            await self.cors.for_kind(route_kind(route_path(scope)))(scope, receive, send)
            return
        await self._check(scope, receive, send, length, content_type)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app behind CORS: the access rules and the limits."""
        length, content_type, _ = _scan(scope)
        await self._check(scope, receive, send, length, content_type)

    async def _check(
        self, scope: Scope, receive: Receive, send: Send, length: bytes | None, content_type: bytes
    ) -> None:
        path = route_path(scope)
        kind = route_kind(path)
        if path not in self.public_paths and kind not in ("open", "deploy"):
            needs_key = bool(self.settings.api_keys) and kind in self.keyed
            if kind == "mcp" or needs_key:
                caller = Caller.from_scope(scope, only=_CREDENTIAL_HEADERS)
                if kind == "mcp" and not mcp_origin_allowed(self.settings, caller):
                    origin = caller.headers.get("origin", "")[:100]
                    message = (
                        f"Origin {origin!r} is not allowed to use MCP here; "
                        "list it in HAYHOOKS_CORS_ALLOW_ORIGINS"
                    )
                    await refuse(scope, receive, send, 403, message, "forbidden_origin")
                    return
                if needs_key and not api_key_valid(self.settings, caller):
                    await refuse(
                        scope,
                        receive,
                        send,
                        401,
                        "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                        "invalid_api_key",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                    return
        await self._limited(scope, receive, send, length, content_type)

    # -- body size limits ----------------------------------------------------------------------
    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, length: bytes | None, content_type: bytes
    ) -> None:
        upload = content_type[:10].lower() == b"multipart/"
        limit = self.settings.max_upload_bytes if upload else self.settings.max_request_bytes
        setting = "HAYHOOKS_MAX_UPLOAD_BYTES" if upload else "HAYHOOKS_MAX_REQUEST_BYTES"
        if limit <= 0:
            await self.app(scope, receive, send)
            return
        if length is not None:
            if not length.strip().isdigit():
                await refuse(scope, receive, send, 400, "Invalid Content-Length header", "invalid_request")
                return
            if int(length) > limit:
                await self._too_large(scope, receive, send, limit, setting, int(length))
                return
            await self.app(scope, receive, send)  # the server never delivers more than declared
            return
        await self._counted(scope, receive, send, limit, setting)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str) -> None:
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app made of the cut-off body; our 413 goes out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._too_large(scope, receive, send, limit, setting, None)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str, size: int | None
    ) -> None:
        what = f"{size} bytes" if size is not None else "more bytes"
        await refuse(
            scope,
            receive,
            send,
            413,
            f"Request body too large: {what} sent, the limit is {limit} bytes ({setting})",
            "request_too_large",
            headers={"Connection": "close"},
        )
