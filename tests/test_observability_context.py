import logging

from hayhooks.observability import context
from hayhooks.observability.logs import AccessPathFilter, JsonFormatter, TextFormatter
from hayhooks.settings import HayhooksSettings


def test_request_ids_are_sanitised_and_bounded():
    assert context.sanitize_request_id("abc-123_X.y:z") == "abc-123_X.y:z"
    assert context.sanitize_request_id('evil\r\nX-Injected: 1 "quoted"') == "evilX-Injected:1quoted"
    assert len(context.sanitize_request_id("a" * 1000) or "") == context.MAX_REQUEST_ID_LENGTH
    assert context.sanitize_request_id("\n\t ") is None and context.sanitize_request_id(None) is None
    assert len(context.new_request_id()) == 32


def _record(msg: str, *args, name: str = "hayhooks") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def test_json_lines_carry_the_request_and_pipeline():
    import json
    import os

    info, token = context.begin("req-1")
    info.pipeline = "echo"
    try:
        line = JsonFormatter().format(_record("hello %s", "world"))
        text = TextFormatter().format(_record("plain"))
    finally:
        context.end(token)
    data = json.loads(line)
    assert data["message"] == "hello world" and data["level"] == "INFO" and data["logger"] == "hayhooks"
    assert data["request_id"] == "req-1" and data["pipeline"] == "echo" and data["pid"] == os.getpid()
    assert data["time"].endswith("Z")
    assert "[req-1] plain" in text
    outside = json.loads(JsonFormatter().format(_record("idle")))
    assert outside["request_id"] is None and outside["pipeline"] is None


def test_access_log_path_exclusions():
    keep = AccessPathFilter(["/health", "/metrics"])
    access = ("127.0.0.1:5000", "GET", "/metrics?x=1", "1.1", 200)
    assert not keep.filter(_record('%s - "%s %s HTTP/%s" %d', *access, name="uvicorn.access"))
    run = ("127.0.0.1:5000", "POST", "/echo/run", "1.1", 200)
    assert keep.filter(_record('%s - "%s %s HTTP/%s" %d', *run, name="uvicorn.access"))


def test_excluded_prefixes_setting_takes_json_or_comma_lists(monkeypatch):
    monkeypatch.setenv("HAYHOOKS_ACCESS_LOG_EXCLUDED_PATH_PREFIXES", '["/health", "/metrics"]')
    assert HayhooksSettings().access_log_excluded_path_prefixes == ["/health", "/metrics"]
    monkeypatch.setenv("HAYHOOKS_ACCESS_LOG_EXCLUDED_PATH_PREFIXES", "/health, /ready")
    assert HayhooksSettings().access_log_excluded_path_prefixes == ["/health", "/ready"]
    monkeypatch.delenv("HAYHOOKS_ACCESS_LOG_EXCLUDED_PATH_PREFIXES")
    assert HayhooksSettings().access_log_excluded_path_prefixes == []


def test_generated_request_ids_are_unique_hex_and_differ_in_a_forked_child():
    import os

    from hayhooks.observability import context

    ids = {context.new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its sequence must not repeat the parent's
        os.write(write, context.new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child[:20] != context.new_request_id()[:20]


async def test_refusals_of_the_access_guard_carry_the_request_id(app_client, pipelines_dir):
    """The request-id layer wraps the guard: a 401 (and an OpenAI-shaped 401) has the id too."""
    client = await app_client(pipelines_dir, api_keys="k1")
    refused = await client.post("/echo/run", json={}, headers={"X-Request-ID": "caller-7"})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == "caller-7" and refused.json()["request_id"] == "caller-7"
    openai = await client.post("/v1/chat/completions", json={})
    assert openai.status_code == 401 and "error" in openai.json()
    assert openai.json()["request_id"] == openai.headers["x-request-id"]
