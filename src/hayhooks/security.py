"""Who may deploy code. Shared by the HTTP deploy routes and the MCP deploy tools.

Deploying a pipeline runs arbitrary Python, so it is allowed only when runtime deploys are enabled
and either the caller presents ``HAYHOOKS_ADMIN_TOKEN`` as a Bearer token, or no token is set and
the server is bound to (and reached through) a loopback address.
"""

from __future__ import annotations

import hmac
from typing import Optional

from hayhooks.errors import Forbidden, Unauthorized
from hayhooks.settings import HayhooksSettings, is_loopback


def authorize_deploy(
    settings: HayhooksSettings, authorization: Optional[str], local_address: Optional[str] = None
) -> None:
    if settings.disable_runtime_deploy:
        raise Forbidden("Runtime deploys are disabled (HAYHOOKS_DISABLE_RUNTIME_DEPLOY=true)")
    if settings.admin_token:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), settings.admin_token):
            raise Unauthorized("Deploy endpoints need 'Authorization: Bearer <HAYHOOKS_ADMIN_TOKEN>'")
        return
    reached_locally = local_address is None or is_loopback(local_address)
    if not (settings.bound_to_loopback and reached_locally):
        raise Forbidden(
            "Deploy endpoints are open only on a loopback-bound server when no admin token is set; "
            "set HAYHOOKS_ADMIN_TOKEN to deploy to a server bound to another address"
        )
