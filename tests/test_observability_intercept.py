"""``HAYHOOKS_INTERCEPTED_LOGGERS``: library loggers named there write in our format, once; others don't."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import wait_until
from mcp_support import mcp_run_http

from hayhooks.settings import HayhooksSettings

FIXTURE = Path(__file__).parent / "fixtures" / "observability" / "library_logs"
HAYHOOKS = str(Path(sys.executable).with_name("hayhooks"))


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def test_the_setting_takes_the_2x_default_a_json_list_or_a_comma_list(monkeypatch) -> None:
    assert HayhooksSettings().intercepted_loggers == ["uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"]
    monkeypatch.setenv("HAYHOOKS_INTERCEPTED_LOGGERS", '["mylib", "httpx"]')
    assert HayhooksSettings().intercepted_loggers == ["mylib", "httpx"]
    monkeypatch.setenv("HAYHOOKS_INTERCEPTED_LOGGERS", "mylib, haystack")
    assert HayhooksSettings().intercepted_loggers == ["mylib", "haystack"]
    monkeypatch.setenv("HAYHOOKS_INTERCEPTED_LOGGERS", "")
    assert HayhooksSettings().intercepted_loggers == []


@pytest.mark.e2e
def test_an_intercepted_library_logger_writes_json_with_the_request_id_once(hayhooks_server, pipelines_dir):
    shutil.copytree(FIXTURE, pipelines_dir / "library_logs")
    server = hayhooks_server(
        pipelines_dir,
        env={
            "HAYHOOKS_INTERCEPTED_LOGGERS": "mylib",
            "HAYHOOKS_LOG_FORMAT": "json",
            "HAYHOOKS_LOG_LEVEL": "info",
        },
    )
    r = httpx.post(f"{server.url}/library_logs/run", json={"name": "Ada"}, timeout=30)
    assert r.status_code == 200 and r.json() == {"result": "Hello Ada"}
    request_id = r.headers["x-request-id"]

    def greeting_lines() -> list[dict[str, Any]]:
        lines = json_lines(server.log())
        found = [x for x in lines if x.get("logger") in ("mylib", "mylib.inner") and "greets" in x["message"]]
        bound = [x for x in lines if x.get("message") == "bound greeting"]
        return found + bound if len(found) >= 2 and bound else []

    lines = wait_until(greeting_lines, timeout=30)
    mylib, inner, bound = lines
    assert mylib["message"] == "mylib greets Ada" and mylib["level"] == "WARNING"
    assert mylib["request_id"] == request_id and mylib["pipeline"] == "library_logs"
    assert mylib["pid"] == server.proc.pid  # one worker: the server process itself
    assert inner["logger"] == "mylib.inner" and inner["request_id"] == request_id  # a child logger too
    assert bound["user"] == "Ada" and bound["request_id"] == request_id  # log.bind(...) fields
    text = server.log()
    assert text.count("mylib greets Ada") == 1  # not printed again by a root handler
    assert text.count("mylib is set up") == 1
    # uvicorn.access is not in the list: its lines keep uvicorn's own (text) format.
    access = [line for line in text.splitlines() if "POST /library_logs/run" in line]
    assert access and not any(line.startswith("{") for line in access)


@pytest.mark.e2e
def test_without_the_setting_a_library_logger_is_left_alone(hayhooks_server, pipelines_dir):
    shutil.copytree(FIXTURE, pipelines_dir / "library_logs")
    server = hayhooks_server(pipelines_dir, env={"HAYHOOKS_LOG_FORMAT": "json"})
    r = httpx.post(f"{server.url}/library_logs/run", json={"name": "Bo"}, timeout=30)
    assert r.status_code == 200
    wait_until(lambda: "mylib greets Bo" in server.log(), timeout=30)
    assert not any(x.get("logger") == "mylib" for x in json_lines(server.log()))
    # The default list still puts uvicorn's access lines in our JSON format.
    wait_until(
        lambda: any(x.get("path") == "/library_logs/run" for x in json_lines(server.log())), timeout=30
    )


@pytest.mark.e2e
def test_mcp_run_intercepts_too(pipelines_dir, tmp_path):
    shutil.copytree(FIXTURE, pipelines_dir / "library_logs")
    log_path = tmp_path / "mcp.log"
    with mcp_run_http(
        pipelines_dir,
        log_path,
        HAYHOOKS_INTERCEPTED_LOGGERS='["mylib", "uvicorn", "uvicorn.error"]',
        HAYHOOKS_LOG_FORMAT="json",
    ):

        def setup_line() -> list[dict[str, Any]]:
            return [x for x in json_lines(log_path.read_text()) if x.get("message") == "mylib is set up"]

        (line,) = wait_until(setup_line, timeout=30)
        assert line["logger"] == "mylib" and line["level"] == "WARNING"
        # Written by the server process, with the pid every other line of that process has.
        assert line["pid"] != os.getpid() and {x["pid"] for x in json_lines(log_path.read_text())} == {
            line["pid"]
        }
        assert any(x.get("logger", "").startswith("uvicorn") for x in json_lines(log_path.read_text()))
        assert log_path.read_text().count("mylib is set up") == 1
