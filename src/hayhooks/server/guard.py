"""The edge of the server: API keys, MCP ``Origin`` checks and request size limits, as ASGI middleware.

They run before any route (including the raw-ASGI MCP endpoints and unknown paths), so a refused
request costs no body read and no route work. Who may do what is decided in ``hayhooks.security``;
this module only classifies paths and renders refusals (OpenAI's error shape on OpenAI routes).
``install_security(app, settings)`` wires it all, CORS included (``hayhooks.server.cors``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hayhooks.security import Caller, api_key_valid, mcp_origin_allowed
from hayhooks.settings import HayhooksSettings

log = logging.getLogger("hayhooks")

RouteKind = Literal["open", "docs", "deploy", "mcp", "metrics", "serving"]

OPEN_PATHS = frozenset({"/health", "/ready"})
DOCS_PATHS = frozenset({"/docs", "/redoc", "/openapi.json"})
DOCS_PREFIXES = ("/docs/", "/redoc/")  # oauth2-redirect, locally served UI assets
DEPLOY_PATHS = frozenset({"/deploy", "/deploy-files", "/deploy_files", "/deploy-yaml", "/deploy_yaml"})
MCP_PATHS = frozenset({"/mcp", "/mcp/", "/sse", "/sse/", "/messages", "/messages/"})
OPENAI_PATHS = frozenset({"/models", "/chat/completions", "/responses", "/files"})


def route_path(scope: Scope) -> str:
    """The path the router sees (without the ASGI ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def route_kind(path: str) -> RouteKind:
    """Which rule applies to a path. Anything unknown is a serving route (the safe default)."""
    if path in OPEN_PATHS:
        return "open"
    if path in DOCS_PATHS or path.startswith(DOCS_PREFIXES):
        return "docs"
    if path in DEPLOY_PATHS or path.startswith("/undeploy/"):
        return "deploy"
    if path in MCP_PATHS:
        return "mcp"
    if path == "/metrics":
        return "metrics"
    return "serving"


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith(("/v1/", "/models/")) or path in OPENAI_PATHS


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
        body: dict[str, Any] = {
            "error": {"message": message, "type": kind, "code": openai_code, "param": None}
        }
    else:
        body = {"detail": message}
    log.info("%s %s -> %s: %s", scope.get("method"), path[:200], status, message)
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


class AccessGuard:
    """API keys on serving routes, and the MCP specification's ``Origin`` check on MCP transports.

    Deploy routes are left to their own guard (``hayhooks.security.authorize_deploy``): an API key
    never deploys. ``/metrics`` needs a key unless the settings say ``metrics_public``.
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        kind = route_kind(path)
        if path in self.public_paths or kind in ("open", "deploy"):
            await self.app(scope, receive, send)
            return
        needs_key = bool(self.settings.api_keys) and kind in self.keyed
        if kind != "mcp" and not needs_key:
            await self.app(scope, receive, send)
            return
        caller = Caller.from_scope(scope)
        if kind == "mcp" and not mcp_origin_allowed(self.settings, caller):
            origin = caller.headers.get("origin", "")[:100]
            message = (
                f"Origin {origin!r} is not allowed to use MCP here; list it in HAYHOOKS_CORS_ALLOW_ORIGINS"
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
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """413 for bodies over ``HAYHOOKS_MAX_REQUEST_BYTES`` (multipart: ``HAYHOOKS_MAX_UPLOAD_BYTES``).

    A declared ``Content-Length`` over the limit is refused before one byte of the body is read; a
    chunked body is counted as it streams in and cut off at the limit. Either way the connection is
    closed, so the rest of an over-large body is never buffered.
    """

    def __init__(self, app: ASGIApp, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = b""
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
        upload = content_type[:10].lower() == b"multipart/"
        limit = self.max_upload_bytes if upload else self.max_request_bytes
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
