"""Who may do what. One module decides trust for HTTP and MCP alike, so no surface has a side door.

- **Serving routes** (runs, OpenAI, MCP, ``/status``, ``/draw``) are open, or, when
  ``HAYHOOKS_API_KEYS`` is set, need one of the keys (or the admin token) as ``Authorization:
  Bearer <key>`` or ``X-API-Key: <key>``.
- **Deploying code** runs arbitrary Python. It needs runtime deploys enabled and either the admin
  token as a Bearer token, or, when no token is set, a loopback-bound server and a request that is
  *genuinely local* (see :func:`is_genuinely_local`). An API key never deploys.
- **Web pages** (requests with an ``Origin``) never deploy unless they are this server's own pages,
  or their origin is listed explicitly in ``HAYHOOKS_CORS_ALLOW_ORIGINS`` and an admin token is set.

Everything here works on plain values (headers, addresses) so the domain layer, MCP and the ASGI
middleware share it without FastAPI.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from hayhooks.errors import Forbidden, Unauthorized
from hayhooks.settings import HayhooksSettings, is_loopback

# Headers a reverse proxy adds: their presence means the peer address is not the client's.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")

# An Origin on this machine: http(s)://localhost, 127.x.x.x or [::1], any port.
LOOPBACK_ORIGIN_REGEX = r"https?://(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d{1,5})?"


@dataclass(frozen=True)
class Caller:
    """What a request says about who sent it. ``headers`` has lower-case names, latin-1 values."""

    headers: Mapping[str, str]
    client: Optional[str] = None  # the peer address
    server: Optional[str] = None  # the local address the connection reached
    http_version: Optional[str] = None

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any], only: Optional[frozenset[bytes]] = None) -> Caller:
        """From an ASGI scope (header names arrive lower-case), keeping ``only`` those headers if given.

        Repeated headers are joined with ``,`` (so a second ``Host`` never hides behind the first).
        """
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or ():
            if only is not None and raw_name not in only:
                continue
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        client, server = scope.get("client"), scope.get("server")
        return cls(
            headers,
            client[0] if client else None,
            server[0] if server else None,
            scope.get("http_version"),
        )


# -- where a request comes from ---------------------------------------------------------------------
def is_loopback_host(host: Optional[str]) -> bool:
    """A ``Host`` header naming this machine: ``localhost``, ``127.0.0.1:8000``, ``[::1]:1416`` ..."""
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return False
    else:
        name, _, port = host.partition(":")
        if port and not port.isdigit():
            return False
    return name == "localhost" or (name != "" and is_loopback(name))


def is_loopback_origin(origin: Optional[str]) -> bool:
    return bool(origin) and re.fullmatch(LOOPBACK_ORIGIN_REGEX, origin.strip().lower()) is not None  # type: ignore[union-attr]


def same_origin(origin: str, host: Optional[str]) -> bool:
    """True when a page's ``Origin`` is the server it is talking to (e.g. this server's own /docs)."""
    if not host:
        return False
    try:
        netloc = urlsplit(origin.strip()).netloc
    except ValueError:
        return False
    return netloc != "" and netloc.lower() == host.strip().lower()


def is_genuinely_local(caller: Caller) -> bool:
    """A request from this machine, made directly: the one case trusted without a token.

    - the peer is a loopback address (and so is the address it reached);
    - ``Host`` names a loopback name or address: a page whose DNS name was rebound to 127.0.0.1
      still sends its own name;
    - no ``Forwarded`` / ``X-Forwarded-For`` / ``X-Real-IP``: a reverse proxy on the same host
      connects from loopback on behalf of anyone;
    - ``Origin``, if any, is a loopback origin;
    - not HTTP/1.0, which nginx speaks to upstreams by default and no local client of ours does.

    A proxy that strips all of these and rewrites ``Host`` is indistinguishable from a local client:
    set ``HAYHOOKS_ADMIN_TOKEN`` (or disable runtime deploys) behind any proxy.
    """
    headers = caller.headers
    if caller.client is None or not is_loopback(caller.client):
        return False
    if caller.server is not None and not is_loopback(caller.server):
        return False
    if any(name in headers for name in FORWARDING_HEADERS):
        return False
    if not is_loopback_host(headers.get("host")):
        return False
    origin = headers.get("origin")
    if origin is not None and not is_loopback_origin(origin):
        return False
    return caller.http_version != "1.0"


# -- credentials ------------------------------------------------------------------------------------
def _presented(caller: Caller, *, api_key_header: bool) -> list[bytes]:
    """The secrets a request carries, as raw bytes (a non-ASCII header compares, it does not crash)."""
    found: list[bytes] = []
    scheme, _, token = caller.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found.append(token.strip().encode("latin-1"))
    if api_key_header and caller.headers.get("x-api-key", "").strip():
        found.append(caller.headers["x-api-key"].strip().encode("latin-1"))
    return found


def _any_matches(presented: Iterable[bytes], secrets: Iterable[str]) -> bool:
    """Constant time in the secrets' content: every pair is compared, no early exit."""
    matched = False
    for secret in secrets:
        expected = secret.encode("utf-8")
        for candidate in presented:
            matched |= hmac.compare_digest(candidate, expected)
    return matched


def has_admin_token(settings: HayhooksSettings, caller: Caller) -> bool:
    return bool(settings.admin_token) and _any_matches(
        _presented(caller, api_key_header=False), [settings.admin_token or ""]
    )


def is_admin(settings: HayhooksSettings, caller: Caller) -> bool:
    """Who may see paths, pids and load errors in ``/status``: the admin token, or a local request."""
    return has_admin_token(settings, caller) or is_genuinely_local(caller)


def api_key_valid(settings: HayhooksSettings, caller: Caller) -> bool:
    """True when no keys are configured, or the request carries one of them (or the admin token)."""
    if not settings.api_keys:
        return True
    secrets = [*settings.api_keys, *([settings.admin_token] if settings.admin_token else [])]
    return _any_matches(_presented(caller, api_key_header=True), secrets)


def require_api_key(settings: HayhooksSettings, caller: Caller) -> None:
    """Raise ``Unauthorized`` unless :func:`api_key_valid`. The hook for any serving route."""
    if not api_key_valid(settings, caller):
        raise Unauthorized(
            "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )


# -- origins ----------------------------------------------------------------------------------------
def explicit_origins(settings: HayhooksSettings) -> set[str]:
    """Origins listed by name in ``HAYHOOKS_CORS_ALLOW_ORIGINS`` (``*`` lists nobody)."""
    return {o.strip().rstrip("/").lower() for o in settings.cors_allow_origins if o.strip() not in ("*", "")}


def _listed(settings: HayhooksSettings, origin: str) -> bool:
    return origin.strip().rstrip("/").lower() in explicit_origins(settings)


def web_deploy_allowed(settings: HayhooksSettings, origin: str) -> bool:
    """May a page from ``origin`` (another site) deploy? Only if listed by name and a token is set."""
    return bool(settings.admin_token) and _listed(settings, origin)


def mcp_origin_allowed(settings: HayhooksSettings, caller: Caller) -> bool:
    """The ``Origin`` check the MCP specification requires of HTTP transports (DNS rebinding).

    Accepted: no ``Origin`` (not a browser), a loopback origin, the server's own origin (on a
    loopback-bound server only when ``Host`` is loopback too), an origin listed by name in
    ``HAYHOOKS_CORS_ALLOW_ORIGINS`` or matching ``HAYHOOKS_CORS_ALLOW_ORIGIN_REGEX``. ``*`` does
    not open MCP to every site.
    """
    origin = caller.headers.get("origin")
    if origin is None or is_loopback_origin(origin) or _listed(settings, origin):
        return True
    regex = settings.cors_allow_origin_regex
    if regex and re.fullmatch(regex, origin.strip()):
        return True
    host = caller.headers.get("host")
    return same_origin(origin, host) and (not settings.bound_to_loopback or is_loopback_host(host))


# -- deploys ----------------------------------------------------------------------------------------
def authorize_deploy(settings: HayhooksSettings, caller: Caller) -> None:
    """Raise ``Forbidden`` / ``Unauthorized`` unless ``caller`` may deploy or undeploy code."""
    if settings.disable_runtime_deploy:
        raise Forbidden("Runtime deploys are disabled (HAYHOOKS_DISABLE_RUNTIME_DEPLOY=true)")
    origin = caller.headers.get("origin")
    if (
        origin is not None
        and not same_origin(origin, caller.headers.get("host"))
        and not web_deploy_allowed(settings, origin)
    ):
        raise Forbidden(
            f"Deploys from web pages are refused (Origin {origin[:100]!r}); to allow a site, list it "
            "in HAYHOOKS_CORS_ALLOW_ORIGINS and set HAYHOOKS_ADMIN_TOKEN"
        )
    if settings.admin_token:
        if not has_admin_token(settings, caller):
            raise Unauthorized("Deploy endpoints need 'Authorization: Bearer <HAYHOOKS_ADMIN_TOKEN>'")
        return
    if not (settings.bound_to_loopback and is_genuinely_local(caller)):
        raise Forbidden(
            "Deploy endpoints without HAYHOOKS_ADMIN_TOKEN accept only direct requests from this machine "
            "to a loopback-bound server (no proxy, no foreign Host or Origin); set HAYHOOKS_ADMIN_TOKEN "
            "to deploy through a proxy or to a server bound to another address"
        )


# -- what a non-admin sees of /status ---------------------------------------------------------------
_PUBLIC_PIPELINE_FIELDS = ("name", "pipeline", "type", "capabilities", "description", "status", "mcp_tool")
_PUBLIC_WORKER_FIELDS = ("generation", "pipelines", "in_sync")


def public_pipeline_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A pipeline's status without its source path (names, capabilities, state)."""
    return {key: info[key] for key in _PUBLIC_PIPELINE_FIELDS if key in info}


def public_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /status`` for non-admins: no paths, worker ids (host and pid) or load-error text.

    Unknown keys pass only as numbers or booleans (counters), never as text that could hold a path.
    """
    out: dict[str, Any] = {}
    for key, value in status.items():
        if key == "details":
            out[key] = [public_pipeline_info(item) for item in value]
        elif key == "failed":
            out[key] = [{"name": item.get("name"), "status": "failed"} for item in value]
        elif key == "workers":
            out[key] = [{k: w[k] for k in _PUBLIC_WORKER_FIELDS if k in w} for w in value]
        elif key in ("status", "pipelines") or (isinstance(value, (bool, int, float)) and key != "pid"):
            out[key] = value
    return out
