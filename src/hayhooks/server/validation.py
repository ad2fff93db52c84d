"""Validation errors as JSON that never echoes a huge input back.

pydantic puts the offending ``input`` in each error, and for a missing field that is the whole
body: a 50 MB request would come back as a 50 MB 422. Inputs are kept when small and replaced by a
short summary otherwise.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

MAX_INPUT_CHARS = 200

_summary = reprlib.Repr()
_summary.maxstring = 60
_summary.maxother = 60
_summary.maxlist = _summary.maxtuple = _summary.maxdict = _summary.maxset = 5
_summary.maxlevel = 3


def clip_input(value: Any) -> Any:
    """``value`` itself when it is small, else a bounded text summary of it."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[: MAX_INPUT_CHARS * 4]).decode("utf-8", "replace") + (
            "" if len(value) <= MAX_INPUT_CHARS * 4 else "\u2026"
        )
    if isinstance(value, str):
        if len(value) <= MAX_INPUT_CHARS:
            return value
        return f"{value[:MAX_INPUT_CHARS]}\u2026 ({len(value)} characters)"
    if _small(value, MAX_INPUT_CHARS):
        return value
    return f"{_summary.repr(value)} (truncated)"


def _small(value: Any, budget: int) -> bool:
    """JSON-like and about ``budget`` characters at most; walks at most ``budget`` items."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, (bool, int, float)):
            budget -= 1
        elif isinstance(item, str):
            budget -= len(item) + 2
        elif isinstance(item, Mapping):
            budget -= 2
            for key, sub in item.items():
                if not isinstance(key, str):
                    return False
                budget -= len(key) + 3
                stack.append(sub)
                if budget < 0:
                    return False
        elif isinstance(item, (list, tuple)):
            budget -= 2
            stack.extend(item[: budget + 1])
            if len(item) > budget:
                return False
        else:
            return False
        if budget < 0:
            return False
    return True


def clip_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic / FastAPI error dicts made JSON-safe, with each ``input`` clipped."""
    out = []
    for error in errors:
        item = dict(error)
        if item.get("type") == "json_invalid":
            # The input is the whole raw body, which may not even be text: never echo it.
            item.pop("input", None)
        if "input" in item:
            item["input"] = clip_input(item["input"])
        if "loc" in item:
            item["loc"] = list(item["loc"])
        ctx = item.get("ctx")
        if isinstance(ctx, Mapping):
            item["ctx"] = {
                k: v if v is None or isinstance(v, (str, bool, int, float)) else str(v)
                for k, v in ctx.items()
            }
        item.pop("url", None)
        out.append(item)
    return out


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return clip_errors(exc.errors(include_url=False))
