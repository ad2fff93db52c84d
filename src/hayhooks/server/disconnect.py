"""Noticing that an HTTP client went away while its (non-streaming) run is still going."""

from __future__ import annotations

from starlette.requests import Request


async def client_gone(request: Request) -> None:
    """Return once the client has disconnected. Only for a request whose body was read: the next
    ASGI message is then ``http.disconnect`` (or arrives when the response is complete)."""
    receive = request.receive
    while (await receive())["type"] != "http.disconnect":
        pass
