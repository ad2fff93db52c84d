"""FastAPI dependency guarding the routes that deploy code."""

from __future__ import annotations

from fastapi import Request

from hayhooks.security import authorize_deploy


def require_admin(request: Request) -> None:
    server = request.scope.get("server")
    local = server[0] if server else None
    authorize_deploy(request.app.state.service.settings, request.headers.get("authorization"), local)
