"""YAML pipelines: a Haystack pipeline file plus ``inputs:`` / ``outputs:`` sections.

::

    components: ...
    connections: ...
    inputs:                      # request field -> one or more component sockets
      question: [retriever.query, prompt_builder.question]
    outputs:                     # result key -> component output
      answer: llm.replies
    description: Answers questions   # optional

The YAML becomes a wrapper object like any other, so every front end treats both kinds the same.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import yaml
from haystack import Pipeline

from hayhooks.errors import PipelineLoadError
from hayhooks.pipelines.signature import build_io_spec
from hayhooks.pipelines.wrapper import BasePipelineWrapper

_HAYHOOKS_KEYS = ("inputs", "outputs", "description")
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
        raise PipelineLoadError(f"Pipeline '{name}': {type(exc).__name__}: {exc}") from exc

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
    wrapper._hayhooks_run_spec = build_io_spec(name, "run_api", fields, out_types, description)  # type: ignore[attr-defined]
    return wrapper
