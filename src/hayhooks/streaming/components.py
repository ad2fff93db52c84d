"""Which components of a pipeline stream: the selection rule shared by both streaming generators.

Split out of ``hayhooks.streaming.generator`` so the engine module holds only the run loop and hooks.
By default the last streaming-capable component of the pipeline streams (the last in execution order
that accepts a ``streaming_callback``); ``HAYHOOKS_STREAMING_COMPONENTS`` (``all`` or a comma list of
names) overrides that, and the ``streaming_components`` argument overrides the environment.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from typing import Any, Optional, Union

STREAMING_COMPONENTS_ENV = "HAYHOOKS_STREAMING_COMPONENTS"

StreamingComponents = Union[str, Iterable[str], None]


def _is_pipeline(target: Any) -> bool:
    return hasattr(target, "graph") and hasattr(target, "get_component")


def _has_runtime_callback(instance: Any) -> bool:
    sockets = getattr(instance, "__haystack_input__", None)
    if sockets is None:
        return False
    try:
        return "streaming_callback" in sockets
    except TypeError:  # pragma: no cover - very old haystack Sockets without __contains__
        return "streaming_callback" in getattr(sockets, "_sockets_dict", {})


def _has_init_callback(instance: Any) -> bool:
    try:
        params: Any = inspect.signature(type(instance).__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover
        params = {}
    return "streaming_callback" in params or hasattr(instance, "streaming_callback")


def is_streaming_capable(instance: Any) -> bool:
    """A component streams when it takes a ``streaming_callback`` (init param, attribute or run input)."""
    return _has_runtime_callback(instance) or _has_init_callback(instance)


def _execution_order(pipeline: Any) -> list[str]:
    nodes = list(pipeline.graph.nodes)
    try:
        import networkx as nx

        return list(nx.topological_sort(pipeline.graph))
    except Exception:
        return nodes


def _parse_components(value: StreamingComponents) -> Optional[Union[str, list[str]]]:
    """``None`` = default (last), ``"all"``, or a list of names."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if value.lower() == "all":
            return "all"
        return [v.strip() for v in value.split(",") if v.strip()] or None
    names = [str(v).strip() for v in value if str(v).strip()]
    if names == ["all"]:
        return "all"
    return names or None


def select_streaming_components(pipeline: Any, streaming_components: StreamingComponents = None) -> list[str]:
    """Names of the components of ``pipeline`` whose chunks are streamed (see module docstring)."""
    wanted = _parse_components(streaming_components)
    if wanted is None:
        wanted = _parse_components(os.environ.get(STREAMING_COMPONENTS_ENV))
    order = _execution_order(pipeline)
    capable = [n for n in order if is_streaming_capable(pipeline.get_component(n))]
    if wanted is None:
        return capable[-1:]
    if wanted == "all":
        return capable
    unknown = [n for n in wanted if n not in pipeline.graph.nodes]
    if unknown:
        raise ValueError(f"Unknown components in streaming_components: {unknown}")
    not_capable = [n for n in wanted if n not in capable]
    if not_capable:
        raise ValueError(f"These components do not accept a streaming_callback: {not_capable}")
    return [n for n in order if n in wanted]
