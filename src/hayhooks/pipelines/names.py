"""Validation of what requests name: pipeline names and file paths inside a pipeline folder."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from hayhooks.errors import InvalidInput

# Matched with ``fullmatch``: ``$`` alone would let a trailing newline through ("echo\n").
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")

# The MCP core tools (``hayhooks.mcp.tools.CORE_TOOLS``, pinned by a test): a pipeline of the same
# name would be a tool nobody can call, so such names are refused instead of silently hidden.
MCP_CORE_TOOL_NAMES = frozenset(
    {"get_all_pipeline_statuses", "get_pipeline_status", "deploy_pipeline", "undeploy_pipeline"}
)

# First path segments the server (or a front end mounted on it) already uses.
RESERVED_NAMES = frozenset(
    {
        "status",
        "deploy",
        "deploy-files",
        "deploy_files",
        "deploy-yaml",
        "deploy_yaml",
        "undeploy",
        "draw",
        "docs",
        "redoc",
        "openapi",
        "openapi.json",
        "openapi.yaml",
        "v1",
        "health",
        "ready",
        "mcp",
        "sse",
        "messages",
        "models",
        "chat",
        "completions",
        "responses",
        "files",
        "static",
        "metrics",
    }
)

MAX_FILES = 200
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_PART_BYTES = 255  # one path segment: the usual file-system limit (ENAMETOOLONG beyond)
MAX_PATH_BYTES = 1024


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = name[:100] if isinstance(name, str) else name
        raise InvalidInput(
            f"Invalid pipeline name {shown!r}: use 1-100 letters, digits, '-' or '_', starting with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise InvalidInput(f"Invalid pipeline name {name!r}: it is reserved for a server route")
    if name.lower() in MCP_CORE_TOOL_NAMES:
        raise InvalidInput(f"Invalid pipeline name {name!r}: it is the name of an MCP core tool")
    return name


def validate_relative_path(path: str) -> PurePosixPath:
    """A file path from a request, as a normalised relative path that stays inside its folder."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise InvalidInput(
            f"Invalid file path {path[:100]!r}" if isinstance(path, str) else "Invalid file path"
        )
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidInput(f"Invalid file path {path[:100]!r}...: longer than {MAX_PATH_BYTES} bytes")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise InvalidInput(f"Invalid file path {path!r}: absolute paths are not allowed")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise InvalidInput(f"Invalid file path {path!r}: it must stay inside the pipeline folder")
    if any(p.startswith(".") for p in parts):
        raise InvalidInput(f"Invalid file path {path!r}: hidden files are not allowed")
    if any(len(p.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES for p in parts):
        raise InvalidInput(
            f"Invalid file path {path[:100]!r}...: a name is longer than {MAX_PART_BYTES} bytes"
        )
    return PurePosixPath(*parts)


def validate_files(files: dict[str, str]) -> dict[PurePosixPath, str]:
    if not isinstance(files, dict) or not files:
        raise InvalidInput("'files' must be a non-empty mapping of relative path to file content")
    if len(files) > MAX_FILES:
        raise InvalidInput(f"Too many files ({len(files)}); at most {MAX_FILES}")
    total = 0
    out: dict[PurePosixPath, str] = {}
    for raw, text in files.items():
        rel = validate_relative_path(raw)
        if not isinstance(text, str):
            raise InvalidInput(f"Content of {raw!r} must be text")
        total += len(text.encode("utf-8", "surrogatepass"))
        out[rel] = text
    if total > MAX_TOTAL_BYTES:
        raise InvalidInput(f"Files too large ({total} bytes); at most {MAX_TOTAL_BYTES}")
    if PurePosixPath("pipeline_wrapper.py") not in out:
        raise InvalidInput("Missing required file 'pipeline_wrapper.py'")
    return out
