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
import re
from pathlib import Path
from typing import Any, Optional

import yaml
from haystack import Pipeline

from hayhooks.errors import PipelineLoadError
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
    """Runs a YAML pipeline: scatters request fields to sockets, gathers declared outputs."""

    def __init__(
        self,
        pipeline: Pipeline,
        inputs: dict[str, list[tuple[str, str]]],
        outputs: dict[str, tuple[str, str]],
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.inputs = inputs
        self.outputs = outputs
        self.include_outputs_from = {component for component, _ in outputs.values()}

    def setup(self) -> None:  # built in __init__; setup exists for the contract
        pass

    def run_api(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, dict[str, Any]] = {}
        for field, value in kwargs.items():
            for component, socket in self.inputs[field]:
                data.setdefault(component, {})[socket] = value
        result = self.pipeline.run(data, include_outputs_from=self.include_outputs_from)
        return {key: result.get(comp, {}).get(socket) for key, (comp, socket) in self.outputs.items()}


def load(name: str, path: Path, allowed_modules: list[str]) -> YAMLPipelineWrapper:
    data = parse_yaml(name, path.read_text(encoding="utf-8"))
    inputs = {key: _targets(name, key, value) for key, value in data["inputs"].items()}
    outputs: dict[str, tuple[str, str]] = {}
    for key, value in data["outputs"].items():
        (target,) = (
            _targets(name, key, value) if not isinstance(value, list) else _targets(name, key, value[:1])
        )
        outputs[key] = target
    description = str(data.get("description") or f"Run the '{name}' pipeline")
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

    wrapper = YAMLPipelineWrapper(pipeline, inputs, outputs)
    wrapper.skip_mcp = data.get("skip_mcp") is True
    wrapper._hayhooks_run_spec = build_io_spec(name, "run_api", fields, out_types, description)  # type: ignore[attr-defined]
    return wrapper
