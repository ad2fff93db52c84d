"""FastAPI dependency guarding the routes that deploy code."""

from __future__ import annotations

from fastapi import Request

from hayhooks.security import Caller, authorize_deploy


def require_admin(request: Request) -> None:
    authorize_deploy(request.app.state.service.settings, Caller.from_scope(request.scope))
