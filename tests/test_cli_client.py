"""Unit tests of the CLI client's pure parts: URL resolution, error rendering, SSE parsing."""

from __future__ import annotations

import httpx
import pytest

from hayhooks.cli.client import (
    error_from_response,
    format_detail,
    parse_sse,
    resolve_base_url,
    server_url,
)
from hayhooks.cli.common import build_settings, make_client


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 1416, "http://127.0.0.1:1416"),
        ("0.0.0.0", 8000, "http://127.0.0.1:8000"),
        ("localhost", 1416, "http://localhost:1416"),
        ("::", 1416, "http://[::1]:1416"),
        ("::1", 1416, "http://[::1]:1416"),
        ("[::1]", 1416, "http://[::1]:1416"),
        ("example.org", 80, "http://example.org:80"),
    ],
)
def test_server_url(host, port, expected):
    assert server_url(host, port) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:1/", "http://h:1"),
        ("https://h/prefix/", "https://h/prefix"),
        ("h:9000", "http://h:9000"),
        (None, "http://127.0.0.1:7000"),
    ],
)
def test_resolve_base_url(url, expected):
    assert resolve_base_url(url, "0.0.0.0", 7000) == expected


def _env_isolated(monkeypatch, tmp_path, **env):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in (
        "HAYHOOKS_HOST",
        "HAYHOOKS_PORT",
        "HAYHOOKS_ADMIN_TOKEN",
        "HAYHOOKS_WORKERS",
        "HAYHOOKS_PIPELINES_DIR",
        "HAYHOOKS_API_KEYS",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_make_client_uses_env_host_port_and_token(monkeypatch, tmp_path):
    _env_isolated(
        monkeypatch, tmp_path, HAYHOOKS_HOST="0.0.0.0", HAYHOOKS_PORT="9999", HAYHOOKS_ADMIN_TOKEN="s3cret"
    )
    with make_client(None, None) as client:
        assert client.base_url == "http://127.0.0.1:9999"
        assert client._http.headers["authorization"] == "Bearer s3cret"
    with make_client("http://other:1/", "flag-token") as client:
        assert client.base_url == "http://other:1"
        assert client._http.headers["authorization"] == "Bearer flag-token"


def test_make_client_sends_the_first_api_key(monkeypatch, tmp_path):
    _env_isolated(monkeypatch, tmp_path, HAYHOOKS_API_KEYS="k1,k2")
    with make_client("http://other:1", "t") as client:
        assert client._http.headers["x-api-key"] == "k1"
        assert client._http.headers["authorization"] == "Bearer t"


def test_make_client_reads_dotenv_and_defaults(monkeypatch, tmp_path):
    _env_isolated(monkeypatch, tmp_path)
    with make_client(None, None) as client:
        assert client.base_url == "http://127.0.0.1:1416"
        assert "authorization" not in client._http.headers and "x-api-key" not in client._http.headers
    (tmp_path / ".env").write_text("HAYHOOKS_PORT=4242\n")
    with make_client(None, None) as client:
        assert client.base_url == "http://127.0.0.1:4242"


def test_build_settings_flags_override_env_and_unset_fall_back(monkeypatch, tmp_path):
    _env_isolated(monkeypatch, tmp_path, HAYHOOKS_PORT="2000", HAYHOOKS_HOST="0.0.0.0", HAYHOOKS_WORKERS="3")
    settings = build_settings({"port": 3000, "workers": "auto"})
    assert settings.port == 3000
    assert settings.workers == "auto"
    assert settings.host == "0.0.0.0"  # not given: from the environment


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("Pipeline 'x' not found", "Pipeline 'x' not found"),
        (
            [
                {"type": "missing", "loc": ["body", "query"], "msg": "Field required", "input": {}},
                {"type": "int_parsing", "loc": ["body", "top_k"], "msg": "Input should be a valid integer"},
            ],
            "query: Field required; top_k: Input should be a valid integer",
        ),
        ([{"loc": [], "msg": "bad"}], "bad"),
        ({"message": "boom", "pipeline": "p"}, 'boom ({"pipeline": "p"})'),
        (None, "(no details)"),
    ],
)
def test_format_detail(detail, expected):
    assert format_detail(detail) == expected


def _response(status, **kwargs):
    return httpx.Response(status, request=httpx.Request("POST", "http://h/deploy-files"), **kwargs)


def test_error_from_response_json_and_text():
    error = error_from_response(_response(409, json={"detail": "Pipeline 'a' already exists"}))
    assert error.status_code == 409
    assert str(error) == "Server error 409: Pipeline 'a' already exists"
    assert not error.is_auth_error
    assert error_from_response(_response(401, json={"detail": "x"})).is_auth_error

    error = error_from_response(_response(502, text="Bad gateway from proxy"))
    assert str(error) == "Server error 502: Bad gateway from proxy"
    assert error_from_response(_response(500)).detail == "Internal Server Error"


def test_parse_sse_across_chunk_boundaries():
    stream = [
        ": ping\r\n\r\n",
        "data: Hel",
        "lo\r",
        "\n\r\ndata: wor",
        'ld\n\nevent: error\ndata: {"detail": "boom"}\n\n',
        "data: line1\ndata: line2\n\n",
        "data:no-space",
    ]
    events = list(parse_sse(iter(stream)))
    assert [(e.event, e.data) for e in events] == [
        (None, "Hello"),
        (None, "world"),
        ("error", '{"detail": "boom"}'),
        (None, "line1\nline2"),
        (None, "no-space"),
    ]
    assert events[2].is_error and not events[0].is_error
    assert all(e.is_sse for e in events)
