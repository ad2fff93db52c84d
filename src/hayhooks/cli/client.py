"""A small httpx client for the Hayhooks HTTP API, used by the CLI's client commands.

Everything that can go wrong talking to the server ends up as one of two exceptions:
``ServerUnreachable`` (nothing answered) or ``ServerError`` (the server answered with an error
status). The CLI turns both into one readable line and a non-zero exit code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import httpx

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1416

# Connecting should be quick; deploys and runs may legitimately take long, so reads do not time out
# unless the caller asks for a limit.
CONNECT_TIMEOUT = 10.0
SHORT_READ_TIMEOUT = 30.0

# Hosts that mean "every interface" when binding; a client reaches them over loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}


class ClientError(Exception):
    """Root of the client errors; ``str(error)`` is a complete one-line message."""


class ServerUnreachable(ClientError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"Cannot reach the Hayhooks server at {url} ({reason}). "
            "Is it running? Start it with `hayhooks run`, or point the CLI elsewhere with --url."
        )


class ServerError(ClientError):
    """The server answered with an error status; ``detail`` is its (rendered) explanation."""

    def __init__(self, status_code: int, detail: str, method: str, path: str, body: Any = None) -> None:
        self.status_code = status_code
        self.body = body
        self.detail = detail
        self.method = method
        self.path = path
        super().__init__(f"Server error {status_code}: {detail}")

    @property
    def is_auth_error(self) -> bool:
        return self.status_code in (401, 403)


def server_url(host: str, port: int, scheme: str = "http") -> str:
    """``http://host:port`` for a host the server was told to bind to (wildcards → loopback)."""
    host = host.strip()
    host = _WILDCARD_HOSTS.get(host, host)
    bare = host.strip("[]")
    if ":" in bare:  # IPv6 literal
        host = f"[{bare}]"
    return f"{scheme}://{host}:{port}"


def resolve_base_url(url: Optional[str], host: str, port: int, https: bool = False) -> str:
    """The server's base URL: an explicit ``--url`` wins, else the (settings') host and port.

    A ``--url`` without a scheme gets ``http://`` (``https://`` with HAYHOOKS_USE_HTTPS); trailing
    slashes are dropped so paths join cleanly.
    """
    scheme = "https" if https else "http"
    if url:
        url = url.strip()
        if "://" not in url:
            url = f"{scheme}://{url}"
        return url.rstrip("/")
    return server_url(host, port, scheme)


def format_detail(detail: Any) -> str:
    """Render a FastAPI ``detail`` readably: a string as is, pydantic errors as ``loc: msg`` items."""
    if detail is None:
        return "(no details)"
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = item.get("loc") or []
                # FastAPI prefixes the location with where it was found ("body", "query", ...).
                loc = [str(p) for p in loc]
                if loc and loc[0] in ("body", "query", "path", "header", "cookie") and len(loc) > 1:
                    loc = loc[1:]
                where = ".".join(loc)
                parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
            else:
                parts.append(format_detail(item))
        return "; ".join(parts) if parts else "(no details)"
    if isinstance(detail, dict):
        message = detail.get("message") or detail.get("error") or detail.get("msg")
        if isinstance(message, str):
            rest = {k: v for k, v in detail.items() if k not in ("message", "error", "msg", "traceback")}
            return f"{message} ({json.dumps(rest, default=str)})" if rest else message
        return json.dumps(detail, default=str)
    return str(detail)


def error_from_response(response: httpx.Response) -> ServerError:
    """Build a ``ServerError`` from an error response (JSON ``detail`` when there is one)."""
    request = response.request
    detail: Any
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = format_detail(body["detail"])
    elif body is not None:
        detail = format_detail(body)
    else:
        text = response.text.strip()
        detail = text[:500] if text else (response.reason_phrase or "no details")
    return ServerError(response.status_code, detail, request.method, request.url.path, body)


@dataclass
class UploadFile:
    """One file of a multipart ``run`` request: the name sent to the server and the local path."""

    name: str
    path: Path


@dataclass
class StreamEvent:
    """One piece of a streamed response: text to print, or an SSE error event."""

    data: str
    event: Optional[str] = None
    is_sse: bool = False

    @property
    def is_error(self) -> bool:
        return self.event == "error"


class HayhooksClient:
    """Synchronous client for one Hayhooks server."""

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        timeout: Optional[float] = None,
        api_key: Optional[str] = None,
        verify: bool = True,
    ) -> None:
        """``verify=False`` (HAYHOOKS_DISABLE_SSL) accepts any TLS certificate, e.g. a self-signed one."""
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if api_key:  # serving routes of a server with HAYHOOKS_API_KEYS (the admin token works there too)
            headers["X-API-Key"] = api_key
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HayhooksClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        if isinstance(exc, httpx.ConnectTimeout):
            reason = "connection timed out"
        elif isinstance(exc, httpx.ConnectError):
            text = str(exc)
            reason = "connection refused" if "refused" in text.lower() else (text or "cannot connect")
        elif isinstance(exc, httpx.TimeoutException):
            reason = "no answer in time"
        else:
            reason = str(exc) or type(exc).__name__
        return ServerUnreachable(self.base_url, reason)

    def _request(self, method: str, path: str, *, short: bool = False, **kwargs: Any) -> Any:
        if short and self._timeout is None:
            kwargs.setdefault("timeout", httpx.Timeout(SHORT_READ_TIMEOUT, connect=CONNECT_TIMEOUT))
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except httpx.InvalidURL as exc:
            raise ClientError(f"Invalid server URL {self.base_url!r}: {exc}") from None
        if response.is_error:
            raise error_from_response(response)
        return _decode(response)

    # -- API --------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        body = self._request("GET", "/status", short=True)
        if not isinstance(body, dict):
            raise ClientError(f"Unexpected /status answer from {self.base_url}: {body!r}")
        return body

    def metrics(self) -> str:
        """The Prometheus text of ``GET /metrics``."""
        body = self._request("GET", "/metrics", short=True)
        return body if isinstance(body, str) else ""

    def deploy_files(
        self,
        name: str,
        files: dict[str, str],
        *,
        overwrite: bool = False,
        save_files: bool = True,
        description: Optional[str] = None,
        skip_mcp: bool = False,
        extra: Optional[dict[str, Any]] = None,
    ) -> Any:
        payload: dict[str, Any] = {
            "name": name,
            "files": files,
            "overwrite": overwrite,
            "save_files": save_files,
        }
        # Only when given: servers that predate these fields keep accepting the request.
        if description is not None:
            payload["description"] = description
        if skip_mcp:
            payload["skip_mcp"] = True
        payload.update(extra or {})
        return self._request("POST", "/deploy-files", json=payload)

    def deploy_yaml(
        self,
        name: str,
        source_code: str,
        *,
        overwrite: bool = False,
        description: Optional[str] = None,
        save_file: bool = True,
        skip_mcp: bool = False,
        extra: Optional[dict[str, Any]] = None,
    ) -> Any:
        payload: dict[str, Any] = {
            "name": name,
            "source_code": source_code,
            "overwrite": overwrite,
            "description": description,
            "save_file": save_file,
        }
        if skip_mcp:
            payload["skip_mcp"] = True
        payload.update(extra or {})
        return self._request("POST", "/deploy-yaml", json=payload)

    def undeploy(self, name: str) -> Any:
        return self._request("POST", f"/undeploy/{_quote(name)}")

    def history(self, name: str) -> Any:
        return self._request("GET", f"/pipelines/{_quote(name)}/history", short=True)

    def rollback(self, name: str, version: Optional[str] = None) -> Any:
        return self._request("POST", f"/pipelines/{_quote(name)}/rollback", json={"version": version})

    def run(self, name: str, params: dict[str, Any], files: Optional[list[UploadFile]] = None) -> Any:
        path = f"/{_quote(name)}/run"
        if not files:
            return self._request("POST", path, json=params)
        with _open_uploads(files) as parts:
            return self._request("POST", path, data=form_fields(params), files=parts)

    def run_stream(
        self, name: str, params: dict[str, Any], files: Optional[list[UploadFile]] = None
    ) -> Iterator[StreamEvent]:
        """POST to the run route and yield what the server sends as it arrives.

        A streamed answer is ``text/plain`` (each chunk yielded as is) or ``text/event-stream``
        (each event's ``data`` yielded). A plain JSON answer (the pipeline did not stream) is
        yielded once, as its ``result`` rendered by the caller: the event is then ``"result"`` and
        ``data`` the JSON text of the whole body.
        """
        path = f"/{_quote(name)}/run"
        with _open_uploads(files or []) as parts:
            kwargs: dict[str, Any] = (
                {"data": form_fields(params), "files": parts} if parts else {"json": params}
            )
            started = False
            try:
                with self._http.stream("POST", path, **kwargs) as response:
                    started = True
                    if response.is_error:
                        response.read()
                        raise error_from_response(response)
                    content_type = response.headers.get("content-type", "").lower()
                    if content_type.startswith("text/event-stream"):
                        yield from parse_sse(response.iter_text())
                    elif content_type.startswith("application/json"):
                        response.read()
                        yield StreamEvent(data=response.text, event="result")
                    else:
                        for text in response.iter_text():
                            if text:
                                yield StreamEvent(data=text)
            except httpx.TransportError as exc:
                if started:  # the server answered, then cut the body short: the pipeline failed mid-stream
                    raise ClientError(
                        f"The stream from pipeline '{name}' ended early: the pipeline failed while streaming "
                        "(see the server log)."
                    ) from None
                raise self._unreachable(exc) from None


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text


def form_fields(params: dict[str, Any]) -> dict[str, str]:
    """Params as multipart form fields: strings as they are, anything else JSON-encoded."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items()}


class _open_uploads:
    """Open every upload file for a multipart request and close them all afterwards."""

    def __init__(self, files: list[UploadFile]) -> None:
        self._files = files
        self._handles: list[Any] = []

    def __enter__(self) -> list[tuple[str, tuple[str, Any, str]]]:
        import mimetypes

        parts = []
        try:
            for upload in self._files:
                handle = open(upload.path, "rb")
                self._handles.append(handle)
                content_type = mimetypes.guess_type(upload.name)[0] or "application/octet-stream"
                parts.append(("files", (upload.name, handle, content_type)))
        except BaseException:
            self.__exit__()
            raise
        return parts

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.close()
        self._handles.clear()


def parse_sse(chunks: Iterator[str]) -> Iterator[StreamEvent]:
    """Parse a Server-Sent Events text stream into events (``data`` lines joined by newlines).

    Comments (``:`` lines, e.g. keep-alive pings) and events without data are skipped.
    """
    buffer = ""
    event: Optional[str] = None
    data: list[str] = []

    def dispatch() -> Optional[StreamEvent]:
        nonlocal event, data
        result = StreamEvent(data="\n".join(data), event=event, is_sse=True) if data else None
        event, data = None, []
        return result

    for chunk in chunks:
        buffer += chunk
        # Normalise line endings; a trailing lone "\r" may be the first half of "\r\n".
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            line, buffer = buffer[: cut[0]], buffer[cut[1] :]
            if line == "":
                item = dispatch()
                if item is not None:
                    yield item
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    buffer = buffer.rstrip("\r")
    if buffer and not buffer.startswith(":"):
        field, _, value = buffer.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    item = dispatch()
    if item is not None:
        yield item


def _line_end(buffer: str) -> Optional[tuple[int, int]]:
    """Position of the first complete line end in ``buffer`` as (line_end, next_line_start)."""
    for index, char in enumerate(buffer):
        if char == "\n":
            return index, index + 1
        if char == "\r":
            if index + 1 == len(buffer):
                return None  # wait: maybe "\r\n"
            return index, index + (2 if buffer[index + 1] == "\n" else 1)
    return None
