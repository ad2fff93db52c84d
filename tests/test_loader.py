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


WRAPPER_USING_UTILS = """
import json
import logging
import utils
from hayhooks import BasePipelineWrapper

class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        import utils as again  # inside setup()
        self.at_setup = again.VALUE

    def run_api(self) -> dict:
        import utils  # lazily, at request time
        from helpers.lazy import where
        return {"value": utils.VALUE, "setup": self.at_setup, "lazy": where(), "json": json.MINE,
                "logging": logging.MINE}
"""


def _pipeline(root, name, value):
    folder = root / name
    (folder / "helpers").mkdir(parents=True)
    (folder / "pipeline_wrapper.py").write_text(WRAPPER_USING_UTILS)
    (folder / "utils.py").write_text(f"VALUE = {value!r}\n")
    (folder / "json.py").write_text(f"MINE = {value!r}\n")  # named like the standard library
    (folder / "logging.py").write_text(f"MINE = {value!r}\n")
    (folder / "helpers" / "__init__.py").write_text("")
    (folder / "helpers" / "lazy.py").write_text("import utils\ndef where():\n    return utils.VALUE\n")
    return folder


def test_each_pipeline_imports_its_own_siblings_and_never_shadows_anyone(tmp_path):
    import json
    import logging

    a = Loader().load(source(_pipeline(tmp_path, "pa", "a")))
    b = Loader().load(source(_pipeline(tmp_path, "pb", "b")))
    assert a.wrapper.run_api() == {"value": "a", "setup": "a", "lazy": "a", "json": "a", "logging": "a"}
    assert b.wrapper.run_api() == {"value": "b", "setup": "b", "lazy": "b", "json": "b", "logging": "b"}
    # The standard library stays itself for everyone else, during and after the imports.
    assert sys.modules["json"] is json and sys.modules["logging"] is logging
    assert json.dumps({"x": 1}) == '{"x": 1}' and not hasattr(json, "MINE")
    assert "utils" not in sys.modules and "helpers" not in sys.modules
    assert all(str(tmp_path) not in p for p in sys.path)


def _write_wrapper(tmp_path, name, body):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(body)
    return folder


def test_an_import_that_loops_is_bounded_by_the_setup_timeout(tmp_path):
    folder = _write_wrapper(tmp_path, "loops", "while True:\n    pass\n")
    with pytest.raises(PipelineLoadError, match="importing pipeline_wrapper.py did not finish within 1s"):
        Loader(setup_timeout=1).load(source(folder))
    # The looping thread was stopped, not left burning a core.
    import threading
    import time

    deadline = time.monotonic() + 10
    while any(t.name == "hayhooks-load-loops" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "hayhooks-load-loops" for t in threading.enumerate())
    # Others load normally meanwhile (no global import lock is held by the parked thread).
    assert Loader(setup_timeout=5).load(source(SAMPLE_PIPELINES / "echo")).name == "echo"


@pytest.mark.parametrize(
    "body, where",
    [
        ("import sys\nsys.exit(3)\n", "during import"),
        (
            "import sys\nfrom hayhooks import BasePipelineWrapper\n"
            "class PipelineWrapper(BasePipelineWrapper):\n"
            "    def setup(self):\n        sys.exit('bye')\n"
            "    def run_api(self) -> str:\n        return 'x'\n",
            "during setup()",
        ),
    ],
)
def test_sys_exit_in_a_wrapper_is_a_load_error_not_a_dead_server(tmp_path, body, where):
    folder = _write_wrapper(tmp_path, "exits", body)
    with pytest.raises(PipelineLoadError, match="sys.exit") as info:
        Loader(setup_timeout=5).load(source(folder))
    assert where in str(info.value) and str(tmp_path) not in str(info.value)
