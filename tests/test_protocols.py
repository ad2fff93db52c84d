"""Pins the uvicorn protocol internals ``hayhooks.server.protocols`` relies on (header-read timeout);
the behaviour itself is tested against a real server in tests/e2e/test_drain.py."""

from __future__ import annotations

import inspect

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hayhooks.server import protocols


def test_uvicorn_protocol_hooks_we_override_exist():
    for cls in (HttpToolsProtocol, H11Protocol):
        for name in ("connection_made", "connection_lost", "data_received"):
            assert callable(getattr(cls, name)), (cls, name)
    for name in ("on_message_begin", "on_headers_complete"):
        assert callable(getattr(HttpToolsProtocol, name))
    # Both keep the loop and the transport as attributes (set in __init__ / connection_made).
    for cls in (HttpToolsProtocol, H11Protocol):
        assert "self.loop =" in inspect.getsource(cls.__init__)
        assert "self.transport = transport" in inspect.getsource(cls.connection_made)
    assert "self.conn = h11.Connection" in inspect.getsource(H11Protocol.__init__)
    assert h11.IDLE is not None


def test_the_guarded_protocol_loads_as_uvicorns_http_option():
    config = Config(app=lambda scope, receive, send: None, http=protocols.protocol_name())
    config.load()
    assert issubclass(config.http_protocol_class, (HttpToolsProtocol, H11Protocol))
    assert issubclass(config.http_protocol_class, protocols._HeaderTimeout)


def test_timeout_comes_from_the_process_or_the_environment(monkeypatch):
    monkeypatch.setattr(protocols, "header_read_timeout", None)
    monkeypatch.setenv("HAYHOOKS_HEADER_READ_TIMEOUT", "2.5")
    assert protocols._timeout() == 2.5
    monkeypatch.setattr(protocols, "header_read_timeout", 7.0)
    assert protocols._timeout() == 7.0
