from pathlib import PurePosixPath

import pytest

from hayhooks.errors import InvalidInput
from hayhooks.pipelines.names import validate_files, validate_name, validate_relative_path


@pytest.mark.parametrize("name", ["a", "rag-v2", "My_Pipeline", "0day"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-x", "_x", "a/b", "a.b", "status", "STATUS", "v1", "mcp", "x" * 101, "é",
     "echo\n", "status\n", "echo\r", " echo", "deploy_pipeline", "get_pipeline_status",
     "Undeploy_Pipeline", "get_all_pipeline_statuses"],
)  # fmt: skip
def test_invalid_names(name):
    with pytest.raises(InvalidInput):
        validate_name(name)


def test_relative_paths_are_normalised():
    assert validate_relative_path("a/./b.py") == PurePosixPath("a/b.py")


@pytest.mark.parametrize(
    "path",
    ["", "/abs", "../x", "a/../../x", "a\\b", ".env", "a/.git/config", "~/x", "a\x00b",
     "a" * 256 + ".py", "d/" + "é" * 128, "/".join(["d" * 200] * 6)],
)  # fmt: skip
def test_escaping_paths_rejected(path):
    with pytest.raises(InvalidInput):
        validate_relative_path(path)


def test_files_need_wrapper_and_text():
    with pytest.raises(InvalidInput, match="pipeline_wrapper.py"):
        validate_files({"a.py": ""})
    with pytest.raises(InvalidInput, match="text"):
        validate_files({"pipeline_wrapper.py": b"x"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        validate_files({})


def test_long_but_legal_paths_pass():
    assert validate_relative_path("a" * 255) == PurePosixPath("a" * 255)
    assert validate_relative_path("/".join(["d" * 200] * 5))


def test_invalid_name_message_is_bounded():
    with pytest.raises(InvalidInput) as info:
        validate_name("x" * 100_000)
    assert len(info.value.message) < 300


def test_mcp_core_tool_names_are_pinned():
    from hayhooks.mcp.tools import CORE_TOOLS
    from hayhooks.pipelines.names import MCP_CORE_TOOL_NAMES

    assert set(CORE_TOOLS) == MCP_CORE_TOOL_NAMES
