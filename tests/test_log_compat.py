"""``hayhooks.log`` takes the loguru habits of 2.x wrappers (trace, success, ``{}`` placeholders)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import copy_pipelines

from hayhooks import log
from hayhooks.log_compat import SUCCESS, TRACE

COMPAT = Path(__file__).parent / "fixtures" / "compat"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    handler = Records()
    level = log.level
    log.addHandler(handler)
    log.setLevel("TRACE")
    yield handler.records
    log.removeHandler(handler)
    log.setLevel(level)


def test_trace_success_and_brace_placeholders(records) -> None:
    log.trace("step {} of {}", 1, 2)
    log.success("done")
    log.info("percent style %s", "still works")
    log.info("a literal {brace} without arguments")
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (TRACE, "step 1 of 2"),
        (SUCCESS, "done"),
        (logging.INFO, "percent style still works"),
        (logging.INFO, "a literal {brace} without arguments"),
    ]
    assert records[0].levelname == "TRACE" and records[1].levelname == "SUCCESS"
    assert records[0].funcName == "test_trace_success_and_brace_placeholders"  # the caller, not a shim


def test_a_2x_wrapper_that_logs_the_loguru_way_serves(live_app, tmp_path: Path, records) -> None:
    server = live_app(copy_pipelines(tmp_path / "pipelines", "logs_2x", source=COMPAT), log_level="trace")
    answer = httpx.post(f"{server.url}/logs_2x/run", json={"name": "Ada"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "Hello Ada"
    messages = [r.getMessage() for r in records]
    assert "Running pipeline with name: Ada" in messages
    assert "Greeting Ada (3 letters)" in messages
    assert "logs_2x is set up" in messages


def test_bind_adds_fields_and_opt_is_accepted(records) -> None:
    from hayhooks.observability.logs import JsonFormatter

    log.bind(user="ada", attempt=2).info("hello {}", "there")
    log.bind(user="ada").bind(step="b", name="clash").success("chained")
    log.opt(lazy=True, depth=1).info("plain %s", "call")
    try:
        raise ValueError("boom")
    except ValueError:
        log.opt(exception=True).error("failed")
        log.bind(job=7).opt(exception=True).warning("failed too")
    first, chained, plain, failed, failed_too = records
    assert first.getMessage() == "hello there" and (first.user, first.attempt) == ("ada", 2)
    assert chained.levelname == "SUCCESS" and (chained.user, chained.step, chained.name_) == (
        "ada",
        "b",
        "clash",
    )
    assert chained.name == "hayhooks"
    assert plain.getMessage() == "plain call" and not hasattr(plain, "user")
    assert failed.exc_info and failed.exc_info[0] is ValueError
    assert failed_too.exc_info and failed_too.job == 7
    line = __import__("json").loads(JsonFormatter().format(first))
    assert line["user"] == "ada" and line["attempt"] == 2 and line["message"] == "hello there"
    assert "exception" in __import__("json").loads(JsonFormatter().format(failed_too))
