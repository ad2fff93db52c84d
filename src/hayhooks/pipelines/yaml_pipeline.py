"""YAML pipelines: a Haystack pipeline file plus ``inputs:`` / ``outputs:`` sections.

::

    components: ...
    connections: ...
    inputs:                      # request field -> one or more component sockets
      question: [retriever.query, prompt_builder.question]
    outputs:                     # result key -> component output
      answer: llm.replies
    description: Answers questions   # optional
    skip_mcp: true               # optional: not an MCP tool

The YAML becomes a wrapper object like any other, so every front end treats both kinds the same.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import yaml
from haystack import Pipeline

from hayhooks.errors import InvalidInput, PipelineLoadError
from hayhooks.pipelines.coerce import Converter, converter_for
from hayhooks.pipelines.signature import build_io_spec
from hayhooks.pipelines.wrapper import BasePipelineWrapper

_HAYHOOKS_KEYS = ("inputs", "outputs", "description", "skip_mcp")
_LOADS_TAKES_ALLOWLIST = "allowed_modules" in inspect.signature(Pipeline.loads).parameters


def parse_yaml(name: str, text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineLoadError(f"Pipeline '{name}': invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or "components" not in data:
        raise PipelineLoadError(f"Pipeline '{name}': YAML is not a Haystack pipeline (no 'components')")
    for key in ("inputs", "outputs"):
        if not isinstance(data.get(key), dict) or not data[key]:
            raise PipelineLoadError(
                f"Pipeline '{name}': YAML needs an '{key}:' section mapping names to 'component.socket'"
            )
    return data


def with_entry(text: str, key: str, value: Any) -> str:
    """The YAML text with its top-level ``key`` set to ``value`` (a deploy's ``--description`` /
    ``--skip-mcp`` win over the file's). Only that entry changes, so comments and layout of the
    rest survive; a layout this cannot edit safely is re-serialised instead."""
    key_line = re.compile(rf"""^({key}|"{key}"|'{key}')\s*:""")
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        if skipping and (line[:1] in (" ", "\t") or not line.strip()):
            continue  # the old value's continuation lines (block scalars, nested flow)
        skipping = bool(key_line.match(line))
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    edited = "\n".join(kept) + f"\n{key}: {json.dumps(value)}\n"
    expected = {**yaml.safe_load(text), key: value}
    try:
        result = yaml.safe_load(edited)
    except yaml.YAMLError:
        result = None
    if result != expected:
        return yaml.safe_dump(expected, sort_keys=False, allow_unicode=True)
    return edited


_REFUSED_MODULE = re.compile(r"from module '([^']+)'")


def refusal_message(name: str, exc: BaseException) -> Optional[str]:
    """For a YAML refused by Haystack's deserialization allowlist: a message naming our setting.

    Haystack's own text suggests ``Pipeline.load(..., allowed_modules=...)``, which a server user
    cannot call; HAYHOOKS_YAML_ALLOWED_MODULES is how they extend the allowlist here.
    """
    text = str(exc)
    if type(exc).__name__ != "DeserializationError" or "allowlist" not in text:
        return None
    found = _REFUSED_MODULE.search(text)
    module = found.group(1) if found else None
    what = f"a class from module '{module}'" if module else "a class or callable"
    return (
        f"Pipeline '{name}': the YAML uses {what}, which is not on the deserialization allowlist. "
        f"If you trust it, add its module prefix to HAYHOOKS_YAML_ALLOWED_MODULES "
        f"(e.g. HAYHOOKS_YAML_ALLOWED_MODULES={module or 'my_package'}) and restart the server."
    )


def _targets(name: str, key: str, value: Any) -> list[tuple[str, str]]:
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if not isinstance(item, str) or item.count(".") != 1:
            raise PipelineLoadError(
                f"Pipeline '{name}': input '{key}' must map to 'component.socket', got {item!r}"
            )
        component, socket = item.split(".")
        out.append((component, socket))
    return out


class YAMLPipelineWrapper(BasePipelineWrapper):
    """A YAML pipeline served like a wrapper: request fields scattered to the declared sockets, the
    declared outputs gathered into the result.

    The server builds one for every YAML file of the pipelines directory; it is public (``from
    hayhooks import YAMLPipelineWrapper``, as in Hayhooks 2.x) for code that wants the same thing
    outside the server, from a string or a file::

        wrapper = YAMLPipelineWrapper.from_file("pipelines/qa.yml")
        wrapper.run_api(question="Who?")            # {"answer": ...}
        await wrapper.run_api_async(question="Who?")

    Inputs may be given in their JSON form (a ``ChatMessage`` as its ``to_dict()``): they are built
    for the target socket's type as ``coerce_pipeline_inputs`` does.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        inputs: dict[str, list[tuple[str, str]]],
        outputs: dict[str, tuple[str, str]],
        *,
        name: str = "yaml_pipeline",
        description: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.description = description or f"Run the '{name}' pipeline"
        self.include_outputs_from = {component for component, _ in outputs.values()}
        # Worked out once: only fields whose socket type has a class to build pay anything per run.
        sockets = pipeline.inputs(include_components_with_connected_inputs=True)
        self._converters: dict[str, Converter] = {}
        for key, targets in inputs.items():
            component, socket = targets[0]
            info = sockets.get(component, {}).get(socket)
            convert = converter_for(info["type"]) if info is not None else None
            if convert is not None:
                self._converters[key] = convert

    @classmethod
    def from_yaml(
        cls,
        source: str,
        name: str = "yaml_pipeline",
        *,
        description: Optional[str] = None,
        allowed_modules: Sequence[str] = (),
    ) -> YAMLPipelineWrapper:
        """Build from YAML text with ``inputs:`` / ``outputs:`` sections (``PipelineLoadError`` if it
        is not one). ``description`` wins over the YAML's; ``allowed_modules`` extends Haystack's
        deserialization allowlist, like ``HAYHOOKS_YAML_ALLOWED_MODULES``."""
        return _build(cls, name, source, list(allowed_modules), description)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        name: Optional[str] = None,
        *,
        description: Optional[str] = None,
        allowed_modules: Sequence[str] = (),
    ) -> YAMLPipelineWrapper:
        """Build from a YAML file; the pipeline's name defaults to the file's stem."""
        file = Path(path)
        return cls.from_yaml(
            file.read_text(encoding="utf-8"),
            name or file.stem,
            description=description,
            allowed_modules=allowed_modules,
        )

    def setup(self) -> None:  # built by from_yaml; setup exists for the contract
        pass

    def run_api(self, **kwargs: Any) -> dict[str, Any]:
        """Run the pipeline (blocking); the result maps each declared output to its value."""
        result = self.pipeline.run(self._data(kwargs), include_outputs_from=self.include_outputs_from)
        return self._gather(result)

    async def run_api_async(self, **kwargs: Any) -> dict[str, Any]:
        """The same, with ``Pipeline.run_async`` (for callers already on an event loop)."""
        result = await self.pipeline.run_async(
            self._data(kwargs), include_outputs_from=self.include_outputs_from
        )
        return self._gather(result)

    def _data(self, kwargs: dict[str, Any]) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = {}
        for field, value in kwargs.items():
            targets = self.inputs.get(field)
            if targets is None:
                known = ", ".join(sorted(self.inputs))
                raise InvalidInput(f"Pipeline '{self.name}' has no input '{field}' (its inputs: {known})")
            convert = self._converters.get(field)
            if convert is not None:
                value = convert(value, f"input '{field}'")
            for component, socket in targets:
                data.setdefault(component, {})[socket] = value
        return data

    def _gather(self, result: dict[str, Any]) -> dict[str, Any]:
        return {key: result.get(comp, {}).get(socket) for key, (comp, socket) in self.outputs.items()}


def load(name: str, path: Path, allowed_modules: list[str]) -> YAMLPipelineWrapper:
    """The server's loader: a YAML file of the pipelines directory as a wrapper."""
    return YAMLPipelineWrapper.from_file(path, name, allowed_modules=allowed_modules)


def _build(
    cls: type[YAMLPipelineWrapper],
    name: str,
    text: str,
    allowed_modules: list[str],
    description_override: Optional[str],
) -> YAMLPipelineWrapper:
    data = parse_yaml(name, text)
    inputs = {key: _targets(name, key, value) for key, value in data["inputs"].items()}
    outputs: dict[str, tuple[str, str]] = {}
    for key, value in data["outputs"].items():
        (target,) = (
            _targets(name, key, value) if not isinstance(value, list) else _targets(name, key, value[:1])
        )
        outputs[key] = target
    description = description_override or str(data.get("description") or f"Run the '{name}' pipeline")
    body = {k: v for k, v in data.items() if k not in _HAYHOOKS_KEYS}
    kwargs: dict[str, Any] = (
        {"allowed_modules": allowed_modules} if _LOADS_TAKES_ALLOWLIST and allowed_modules else {}
    )
    try:
        pipeline = Pipeline.from_dict(body, **kwargs)
    except Exception as exc:
        raise PipelineLoadError(
            refusal_message(name, exc) or f"Pipeline '{name}': {type(exc).__name__}: {exc}"
        ) from exc

    sockets_in = pipeline.inputs(include_components_with_connected_inputs=True)
    fields: dict[str, tuple[Any, Any]] = {}
    for key, targets in inputs.items():
        tp: Any = Any
        required = False
        default: Any = None
        for component, socket in targets:
            info = sockets_in.get(component, {}).get(socket)
            if info is None:
                raise PipelineLoadError(
                    f"Pipeline '{name}': input '{key}' targets unknown socket '{component}.{socket}'"
                )
            if tp is Any:
                tp = info.get("type", Any)
            required = required or bool(info.get("is_mandatory"))
            if default is None:
                default = info.get("default_value")
        fields[key] = (tp, ... if required else default)

    out_types: dict[str, Any] = {}
    for key, (component, socket) in outputs.items():
        try:
            instance = pipeline.get_component(component)
        except Exception as exc:
            raise PipelineLoadError(
                f"Pipeline '{name}': output '{key}' names unknown component '{component}'"
            ) from exc
        sockets = getattr(instance, "__haystack_output__", None)
        socket_info = getattr(sockets, "_sockets_dict", {}).get(socket) if sockets is not None else None
        if socket_info is None:
            raise PipelineLoadError(
                f"Pipeline '{name}': output '{key}' targets unknown socket '{component}.{socket}'"
            )
        out_types[key] = Optional[socket_info.type] if socket_info.type is not None else Any

    wrapper = cls(pipeline, inputs, outputs, name=name, description=description)
    wrapper.skip_mcp = data.get("skip_mcp") is True
    wrapper._hayhooks_run_spec = build_io_spec(name, "run_api", fields, out_types, description)  # type: ignore[attr-defined]
    return wrapper
