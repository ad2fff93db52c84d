import sys

import pytest
from conftest import BROKEN_PIPELINES, SAMPLE_PIPELINES, copy_pipelines

from hayhooks.errors import PipelineLoadError
from hayhooks.pipelines.loader import Loader
from hayhooks.pipelines.models import PipelineSource


def source(path, name=None, kind="wrapper"):
    return PipelineSource(name or path.stem if kind == "yaml" else name or path.name, kind, str(path), "fp")


def test_loads_wrapper_with_capabilities_and_spec():
    loaded = Loader().load(source(SAMPLE_PIPELINES / "echo"))
    assert loaded.capabilities == frozenset({"run"}) and loaded.run.method_name == "run_api"
    assert loaded.description == "Greet someone."


def test_async_method_is_preferred():
    loaded = Loader().load(source(SAMPLE_PIPELINES / "async_echo"))
    assert loaded.run.method_name == "run_api_async" and loaded.run.is_async


def test_reload_gets_fresh_code_and_leaves_no_sibling_modules(tmp_path):
    folder = copy_pipelines(tmp_path, "helpers_a") / "helpers_a"
    first = Loader().load(source(folder))
    (folder / "utils.py").write_text("VALUE = 'changed'\n")
    second = Loader().load(source(folder))
    assert first.wrapper.run_api() == "a" and second.wrapper.run_api() == "changed"
    assert "utils" not in sys.modules


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("syntax_error", "SyntaxError"),
        ("import_error", "module_that_does_not_exist_anywhere"),
        ("setup_raises", "setup() failed"),
        ("no_class", "defines no class PipelineWrapper"),
        ("not_subclass", "must subclass"),
    ],
)
def test_broken_wrappers_give_clear_errors(name, fragment):
    with pytest.raises(PipelineLoadError) as info:
        Loader().load(source(BROKEN_PIPELINES / name))
    assert fragment in str(info.value) and name in str(info.value)


def test_tracebacks_on_request():
    with pytest.raises(PipelineLoadError) as info:
        Loader(show_tracebacks=True).load(source(BROKEN_PIPELINES / "setup_raises"))
    assert "Traceback" in str(info.value)


def test_yaml_and_bad_yaml():
    loaded = Loader().load(source(SAMPLE_PIPELINES / "qa.yml", "qa", "yaml"))
    assert loaded.kind == "yaml" and loaded.description == "Builds a prompt for a question."
    with pytest.raises(PipelineLoadError, match="prompt.nope"):
        Loader().load(source(BROKEN_PIPELINES / "bad_inputs.yml", "bad_inputs", "yaml"))


def test_reserved_folder_name_fails_to_load(tmp_path):
    folder = copy_pipelines(tmp_path, "echo") / "echo"
    with pytest.raises(PipelineLoadError, match="reserved"):
        Loader().load(PipelineSource("status", "wrapper", str(folder), "fp"))
