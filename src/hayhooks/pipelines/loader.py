"""Turn one store entry into a LoadedPipeline: import and ``setup()`` a wrapper, or load a YAML.

A broken entry raises ``PipelineLoadError`` with a message a user can act on; the registry turns
that into a reported failure, never a crashed server.
"""

from __future__ import annotations

import builtins
import ctypes
import dataclasses
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from hayhooks.durable.spec import check_durable
from hayhooks.errors import PipelineLoadError
from hayhooks.pipelines import deploy_meta, yaml_pipeline
from hayhooks.pipelines.models import LoadedPipeline, PipelineSource
from hayhooks.pipelines.names import validate_name
from hayhooks.pipelines.signature import build_run_spec
from hayhooks.pipelines.store import WRAPPER_FILE
from hayhooks.pipelines.wrapper import CAPABILITY_METHODS, BasePipelineWrapper, implemented_method

# Guards only the one-time installation of our finder; never held across an import.
_IMPORT_LOCK = threading.Lock()
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
        """Import and set up one pipeline in a thread of its own, bounded by ``setup_timeout``.

        The bound covers the import too: a wrapper that loops at import time is as harmful as a
        ``setup()`` that hangs. Anything the user code raises, ``SystemExit`` included, becomes a
        ``PipelineLoadError``: a pipeline can never stop the server that loads it.
        """
        try:
            validate_name(source.name)
        except Exception as exc:
            raise PipelineLoadError(str(exc)) from exc
        outcome: list[Any] = []
        stage = ["import"]

        def work() -> None:
            try:
                outcome.append(self._load(source, stage))
            except BaseException as exc:  # user code may raise anything, even SystemExit
                outcome.append(exc)

        thread = threading.Thread(target=work, name=f"hayhooks-load-{source.name}", daemon=True)
        thread.start()
        thread.join(self.setup_timeout or None)
        if thread.is_alive():
            # A thread cannot be killed. Python code that loops gets an exception raised into it
            # (so it stops burning a core); one blocked in C (a socket, a sleep) stays parked in
            # its daemon thread until that call returns.
            interrupt(thread)
            what = "setup()" if stage[0] == "setup" else f"importing {WRAPPER_FILE}"
            raise PipelineLoadError(
                f"Pipeline '{source.name}': {what} did not finish within {self.setup_timeout:g}s "
                "(HAYHOOKS_SETUP_TIMEOUT)"
            )
        result = outcome[0]
        if isinstance(result, LoadedPipeline):
            return result
        error = self._as_load_error(source.name, stage[0], result)
        # Where the files happen to live on this server is nobody's business (SyntaxError
        # messages, for one, carry the full path of the file).
        hidden = str(Path(source.path).resolve().parent) + os.sep
        if hidden in error.message:
            error.message = error.message.replace(hidden, "")
            error.args = (error.message,)
        raise error

    def _as_load_error(self, name: str, stage: str, exc: BaseException) -> PipelineLoadError:
        if isinstance(exc, PipelineLoadError):
            return exc
        if isinstance(exc, SystemExit):
            detail = f"it called sys.exit({exc.code!r}) during {'setup()' if stage == 'setup' else 'import'}"
            return PipelineLoadError(f"Pipeline '{name}' failed to load: {detail}")
        detail = f"{type(exc).__name__}: {exc}"
        if self.show_tracebacks:
            detail += "\n" + "".join(traceback.format_exception(exc))
        if stage == "setup":
            error = PipelineLoadError(f"Pipeline '{name}': setup() failed: {detail}")
        else:
            error = PipelineLoadError(f"Pipeline '{name}' failed to load: {detail}")
        error.__cause__ = exc
        return error

    def _load(self, source: PipelineSource, stage: list[str]) -> LoadedPipeline:
        wrapper: Any
        if source.kind == "yaml":
            wrapper = yaml_pipeline.load(source.name, Path(source.path), self.yaml_allowed_modules)
        else:
            wrapper = self._load_wrapper(source, stage)
        return describe(source, wrapper)

    def _load_wrapper(self, source: PipelineSource, stage: list[str]) -> BasePipelineWrapper:
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
        stage[0] = "setup"
        wrapper = cls()
        wrapper.setup()
        return wrapper


class LoadAbandoned(BaseException):
    """Raised into a load thread that ran past the setup timeout (user code should not catch it)."""


def interrupt(thread: threading.Thread) -> bool:
    """Ask CPython to raise ``LoadAbandoned`` in ``thread`` at its next bytecode boundary.

    ``PyThreadState_SetAsyncExc`` is part of CPython's public C API; it is reached through ctypes
    because Python exposes no wrapper for it.
    """
    if thread.ident is None:
        return False
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(LoadAbandoned)
    )
    return bool(done == 1)


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
    loaded = LoadedPipeline(
        name=source.name,
        kind=source.kind,
        wrapper=wrapper,
        source=source,
        capabilities=capabilities,
        run=run_spec,
        description=description,
        skip_mcp=meta.skip_mcp or bool(getattr(wrapper, "skip_mcp", False)),
    )
    if "durable" in capabilities:
        # A run_durable the server cannot call fails the load, not every later submission.
        check_durable(loaded)
    return loaded


class _PipelineImports(importlib.abc.MetaPathFinder):
    """Finds the modules of loaded pipelines, and only those.

    A pipeline's folder is never put on ``sys.path``: its modules exist only as submodules of the
    pipeline's own package (``hayhooks_pipeline_<name>_<n>.utils``). Each of them runs with an
    ``__import__`` of its own that maps a plain ``import utils`` to that package's sibling, so the
    pipeline's code (import time, ``setup()``, ``run_api``, lazy helpers) sees its own modules while
    the standard library, the server and every other pipeline keep seeing theirs.
    """

    def __init__(self) -> None:
        self.packages: dict[str, tuple[str, frozenset[str]]] = {}  # package -> (folder, sibling names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package = fullname.split(".", 1)[0]
        entry = self.packages.get(package)
        if entry is None or fullname == package or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            spec.loader = _PipelineModuleLoader(spec.loader.name, spec.loader.path, package, entry[1])
        return spec


class _PipelineModuleLoader(importlib.machinery.SourceFileLoader):
    def __init__(self, fullname: str, path: str, package: str, siblings: frozenset[str]) -> None:
        super().__init__(fullname, path)
        self.package = package
        self.siblings = siblings

    def exec_module(self, module: ModuleType) -> None:
        module.__dict__["__builtins__"] = _builtins_for(self.package, self.siblings)
        super().exec_module(module)


_FINDER = _PipelineImports()
_BUILTINS_CACHE: dict[str, dict[str, Any]] = {}


def _builtins_for(package: str, siblings: frozenset[str]) -> dict[str, Any]:
    cached = _BUILTINS_CACHE.get(package)
    if cached is not None:
        return cached
    real_import = builtins.__import__

    def pipeline_import(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> ModuleType:
        top = name.partition(".")[0]
        if level == 0 and top in siblings:
            module = real_import(f"{package}.{name}", globals, locals, fromlist, 0)
            return module if fromlist else sys.modules[f"{package}.{top}"]
        return real_import(name, globals, locals, fromlist, level)

    namespace = dict(builtins.__dict__)
    namespace["__import__"] = pipeline_import
    _BUILTINS_CACHE[package] = namespace
    return namespace


def _install_finder() -> None:
    with _IMPORT_LOCK:
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def import_wrapper_module(name: str, folder: Path) -> ModuleType:
    """Import ``<folder>/pipeline_wrapper.py`` as ``<unique package>.pipeline_wrapper``.

    The folder becomes a package of its own under a fresh name, so relative imports work, a reload
    gets fresh code, and two pipelines never share modules. Plain sibling imports (``import utils``)
    resolve to the package's own ``utils`` (see ``_PipelineImports``); nothing is added to
    ``sys.path`` and no ``sys.modules`` entry of anyone else is touched, so there is no global state
    to guard and imports of different pipelines can run at the same time.
    """
    _install_finder()
    package_name = f"{MODULE_PREFIX}{name.replace('-', '_')}_{next(_COUNTER)}"
    folder = folder.resolve()
    siblings = frozenset(
        p.stem if p.suffix == ".py" else p.name
        for p in folder.iterdir()
        if (p.suffix == ".py" and p.stem.isidentifier()) or (p.is_dir() and (p / "__init__.py").is_file())
    )
    _FINDER.packages[package_name] = (str(folder), siblings)
    try:
        init = folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(
                package_name,
                init,
                loader=_PipelineModuleLoader(package_name, str(init), package_name, siblings),
                submodule_search_locations=[str(folder)],
            )
        else:
            spec = importlib.machinery.ModuleSpec(package_name, None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
        if spec is None:
            raise PipelineLoadError(f"Pipeline '{name}': cannot import its folder")
        package = importlib.util.module_from_spec(spec)
        sys.modules[package_name] = package
        if spec.loader is not None:
            spec.loader.exec_module(package)
        return importlib.import_module(f"{package_name}.{WRAPPER_FILE[:-3]}")
    except BaseException:
        _drop_package(package_name)
        raise


def _drop_package(package: str) -> None:
    for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        sys.modules.pop(mod, None)
    _FINDER.packages.pop(package, None)
    _BUILTINS_CACHE.pop(package, None)


def drop_module(module: str) -> None:
    """Drop a retired version's modules from sys.modules so its code can be garbage-collected."""
    package = module.split(".")[0]
    if package.startswith(MODULE_PREFIX):
        _drop_package(package)
