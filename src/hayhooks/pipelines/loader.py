"""Turn one store entry into a LoadedPipeline: import and ``setup()`` a wrapper, or load a YAML.

A broken entry raises ``PipelineLoadError`` with a message a user can act on; the registry turns
that into a reported failure, never a crashed server.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.util
import itertools
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from hayhooks.errors import PipelineLoadError
from hayhooks.pipelines import deploy_meta, yaml_pipeline
from hayhooks.pipelines.models import LoadedPipeline, PipelineSource
from hayhooks.pipelines.names import validate_name
from hayhooks.pipelines.signature import build_run_spec
from hayhooks.pipelines.store import WRAPPER_FILE
from hayhooks.pipelines.wrapper import CAPABILITY_METHODS, BasePipelineWrapper, implemented_method

# sys.path and sys.modules are process-global: imports of wrapper code happen one at a time.
_IMPORT_LOCK = threading.RLock()
_COUNTER = itertools.count(1)
MODULE_PREFIX = "hayhooks_pipeline_"


class Loader:
    def __init__(
        self,
        show_tracebacks: bool = False,
        yaml_allowed_modules: list[str] | None = None,
        setup_timeout: float = 0,
    ) -> None:
        self.show_tracebacks = show_tracebacks
        self.yaml_allowed_modules = yaml_allowed_modules or []
        self.setup_timeout = setup_timeout

    def __call__(self, source: PipelineSource) -> LoadedPipeline:
        return self.load(source)

    def load(self, source: PipelineSource) -> LoadedPipeline:
        try:
            validate_name(source.name)
        except Exception as exc:
            raise PipelineLoadError(str(exc)) from exc
        try:
            wrapper: Any
            if source.kind == "yaml":
                wrapper = yaml_pipeline.load(source.name, Path(source.path), self.yaml_allowed_modules)
            else:
                wrapper = self._load_wrapper(source)
            return describe(source, wrapper)
        except PipelineLoadError:
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            if self.show_tracebacks:
                detail += "\n" + traceback.format_exc()
            raise PipelineLoadError(f"Pipeline '{source.name}' failed to load: {detail}") from exc

    def _load_wrapper(self, source: PipelineSource) -> BasePipelineWrapper:
        folder = Path(source.path)
        module = import_wrapper_module(source.name, folder)
        cls = getattr(module, "PipelineWrapper", None)
        if cls is None:
            raise PipelineLoadError(
                f"Pipeline '{source.name}': {WRAPPER_FILE} defines no class PipelineWrapper"
            )
        if not (isinstance(cls, type) and issubclass(cls, BasePipelineWrapper)):
            raise PipelineLoadError(
                f"Pipeline '{source.name}': PipelineWrapper must subclass hayhooks.BasePipelineWrapper"
            )
        wrapper = cls()
        try:
            self._setup(source.name, wrapper)
        except PipelineLoadError:
            raise
        except Exception as exc:
            raise PipelineLoadError(
                f"Pipeline '{source.name}': setup() failed: {type(exc).__name__}: {exc}"
                + ("\n" + traceback.format_exc() if self.show_tracebacks else "")
            ) from exc
        return wrapper

    def _setup(self, name: str, wrapper: BasePipelineWrapper) -> None:
        """Run ``setup()``, giving up after ``setup_timeout`` seconds so that one pipeline that
        hangs (a model server that never answers) cannot keep every other one from loading.
        A thread cannot be killed: a setup that never returns stays parked in its daemon thread."""
        if not self.setup_timeout:
            wrapper.setup()
            return
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                wrapper.setup()
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run, name=f"hayhooks-setup-{name}", daemon=True)
        thread.start()
        thread.join(self.setup_timeout)
        if thread.is_alive():
            raise PipelineLoadError(
                f"Pipeline '{name}': setup() did not finish within {self.setup_timeout:g}s (HAYHOOKS_SETUP_TIMEOUT)"
            )
        if outcome:
            raise outcome[0]


def describe(source: PipelineSource, wrapper: BasePipelineWrapper) -> LoadedPipeline:
    """Derive capabilities and the run models once, at load time."""
    capabilities = frozenset(c for c in CAPABILITY_METHODS if implemented_method(wrapper, c))
    if not capabilities:
        methods = ", ".join(m for pair in CAPABILITY_METHODS.values() for m in pair)
        raise PipelineLoadError(f"Pipeline '{source.name}': PipelineWrapper implements none of {methods}")
    run_spec = getattr(wrapper, "_hayhooks_run_spec", None)
    if run_spec is None and "run" in capabilities:
        method_name, is_async = implemented_method(wrapper, "run")  # type: ignore[misc]
        run_spec = build_run_spec(source.name, getattr(wrapper, method_name), method_name, is_async)
    description = run_spec.description if run_spec else (type(wrapper).__doc__ or "").strip()
    # A deploy's --description / --skip-mcp, saved with the files (hayhooks.pipelines.deploy_meta).
    meta = deploy_meta.read(Path(source.path)) if source.kind == "wrapper" else deploy_meta.DeployMeta()
    if meta.description:
        description = meta.description
        if run_spec is not None:
            run_spec = dataclasses.replace(run_spec, description=meta.description)
    return LoadedPipeline(
        name=source.name,
        kind=source.kind,
        wrapper=wrapper,
        source=source,
        capabilities=capabilities,
        run=run_spec,
        description=description,
        skip_mcp=meta.skip_mcp or bool(getattr(wrapper, "skip_mcp", False)),
    )


def import_wrapper_module(name: str, folder: Path) -> ModuleType:
    """Import ``<folder>/pipeline_wrapper.py`` as ``<unique package>.pipeline_wrapper``.

    The folder becomes a package of its own under a fresh name, so relative imports work, a reload
    gets fresh code, and two pipelines never share modules. Plain sibling imports (``import utils``)
    work too: the folder is on sys.path during the import only, and sibling modules it brought in
    are taken out of sys.modules afterwards so the next pipeline's ``utils`` is its own.
    """
    package_name = f"{MODULE_PREFIX}{name.replace('-', '_')}_{next(_COUNTER)}"
    folder = folder.resolve()
    siblings = {p.stem for p in folder.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    with _IMPORT_LOCK:
        shadowed = {mod: sys.modules.pop(mod) for mod in list(sys.modules) if mod.split(".")[0] in siblings}
        sys.path.insert(0, str(folder))
        try:
            init = folder / "__init__.py"
            if init.is_file():
                spec = importlib.util.spec_from_file_location(
                    package_name, init, submodule_search_locations=[str(folder)]
                )
            else:
                spec = importlib.machinery.ModuleSpec(package_name, None, is_package=True)
                spec.submodule_search_locations = [str(folder)]
            if spec is None:
                raise PipelineLoadError(f"Pipeline '{name}': cannot import {folder}")
            package = importlib.util.module_from_spec(spec)
            sys.modules[package_name] = package
            if spec.loader is not None:
                spec.loader.exec_module(package)
            try:
                return importlib.import_module(f"{package_name}.{WRAPPER_FILE[:-3]}")
            except BaseException:
                for mod in [
                    m for m in list(sys.modules) if m == package_name or m.startswith(package_name + ".")
                ]:
                    sys.modules.pop(mod, None)
                raise
        finally:
            try:
                sys.path.remove(str(folder))
            except ValueError:
                pass
            for mod in [m for m in list(sys.modules) if m.split(".")[0] in siblings]:
                sys.modules.pop(mod, None)
            sys.modules.update(shadowed)
            importlib.invalidate_caches()


def forget_module(loaded: LoadedPipeline) -> None:
    """Drop a replaced wrapper's modules from sys.modules so its code can be garbage-collected."""
    module = type(loaded.wrapper).__module__
    package = module.split(".")[0]
    if package.startswith(MODULE_PREFIX):
        for mod in [m for m in list(sys.modules) if m == package or m.startswith(package + ".")]:
            sys.modules.pop(mod, None)
