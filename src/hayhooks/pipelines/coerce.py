"""``coerce_pipeline_inputs``: pipeline input data from JSON, turned into the objects the sockets expect.

A request body, a durable checkpoint or a queue message carries Haystack objects in their
``to_dict()`` form: ``{"role": "user", "content": [...]}`` where a component wants a ``ChatMessage``.
``Pipeline.run`` hands such dicts to the component as they are, which then fails deep inside it.
This helper (a public name of Hayhooks 2.x, ``from hayhooks import coerce_pipeline_inputs``) reads
each socket's declared type and builds the objects first, so wrapper code can pass JSON straight on::

    def run_api(self, data: dict) -> dict:
        return self.pipeline.run(coerce_pipeline_inputs(self.pipeline, data))

Which values change: a dict, where the socket type is (or is an optional/union of) a class with
``from_dict`` (Haystack's dataclasses: ``ChatMessage``, ``Document``, ``ByteStream``, ...), a pydantic
model or a standard dataclass; and the dicts inside a list where the socket type is ``list[T]`` /
``Sequence[T]`` of such a class. Everything else (values that already are objects, strings, sockets
typed ``Any`` or ``dict``) is passed through unchanged, and ``data`` itself is never modified.

The YAML pipeline wrapper uses the same converters, worked out once at load time.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel

from hayhooks.errors import InvalidInput

# ``convert(value, where)``: ``where`` names the input in error messages ("input 'messages' of 'llm'").
Converter = Callable[[Any, str], Any]

_UNIONS: tuple[Any, ...] = (Union, types.UnionType)
_SEQUENCES: tuple[Any, ...] = (list, collections.abc.Sequence, collections.abc.MutableSequence)


def coerce_pipeline_inputs(pipeline: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` (flat ``{"socket": value}`` or nested ``{"component": {"socket": value}}``,
    told apart as ``Pipeline.run`` does) with serialized objects built for the sockets' types.

    Raises ``InvalidInput`` (HTTP 422 when raised in a run) when a value cannot be built, or when a
    socket's type is a union of several such classes and a dict does not say which one it is.
    """
    sockets: dict[str, dict[str, Any]] = pipeline.inputs(include_components_with_connected_inputs=True)
    if _is_nested(data, sockets):
        out: dict[str, Any] = {}
        for component, values in data.items():
            types_of = sockets.get(component, {})
            out[component] = {
                socket: _convert(
                    value, [types_of[socket]["type"]] if socket in types_of else [], socket, component
                )
                for socket, value in values.items()
            }
        return out
    # Flat: Haystack gives each value to every component with an open socket of that name.
    open_sockets: dict[str, dict[str, Any]] = pipeline.inputs()
    flat: dict[str, Any] = {}
    for socket, value in data.items():
        candidates = [info[socket]["type"] for info in open_sockets.values() if socket in info]
        flat[socket] = _convert(value, candidates, socket, None)
    return flat


def _is_nested(data: Mapping[str, Any], sockets: dict[str, dict[str, Any]]) -> bool:
    """Nested when every value is a dict, unless no key names a component and every key names a
    socket (then the dicts are flat values for dict-typed sockets): ``Pipeline.run``'s rule."""
    if not data or not all(isinstance(v, dict) for v in data.values()):
        return False
    if any(key in sockets for key in data):
        return True
    socket_names = {name for info in sockets.values() for name in info}
    return not set(data) <= socket_names


def _convert(value: Any, candidates: list[Any], socket: str, component: Optional[str]) -> Any:
    for tp in candidates:
        convert = converter_for(tp)
        if convert is not None:
            where = f"input '{socket}'" + (f" of component '{component}'" if component else "")
            return convert(value, where)
    return value


def converter_for(tp: Any) -> Optional[Converter]:
    """How to build values of socket type ``tp`` from their serialized form; None when nothing
    would ever need building (the value is passed as it is)."""
    tp = _bare(tp)
    if typing.get_origin(tp) in _UNIONS:
        # A dict goes to the union's class arm, a list to its list arm: ``ChatMessage |
        # list[ChatMessage]`` is clear; two classes that both take a dict are not.
        dict_arms: list[tuple[Any, Converter]] = []
        list_arms: list[tuple[Any, Converter]] = []
        for arm in typing.get_args(tp):
            convert = converter_for(arm)
            if convert is not None:
                (list_arms if typing.get_origin(_bare(arm)) in _SEQUENCES else dict_arms).append(
                    (arm, convert)
                )
        if not dict_arms and not list_arms:
            return None
        return _by_shape(dict_arms, list_arms)
    if typing.get_origin(tp) in _SEQUENCES:
        args = typing.get_args(tp)
        item = converter_for(args[0]) if args else None
        return _each(item) if item is not None else None
    if isinstance(tp, type):
        return _builder(tp)
    return None


def _bare(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp


def _builder(cls: type) -> Optional[Converter]:
    build: Optional[Callable[[dict[str, Any]], Any]] = None
    from_dict = getattr(cls, "from_dict", None)
    if callable(from_dict):
        build = from_dict
    elif issubclass(cls, BaseModel):
        build = cls.model_validate
    elif dataclasses.is_dataclass(cls):
        build = lambda d: cls(**d)  # noqa: E731
    if build is None:
        return None
    builder = build

    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            return value  # an object already (or something only the component can judge)
        try:
            return builder(value)
        except Exception as exc:
            raise InvalidInput(f"Invalid {where}: cannot build {cls.__name__} from it: {exc}") from exc

    return convert


def _each(item: Converter) -> Converter:
    def convert(value: Any, where: str) -> Any:
        if isinstance(value, list):
            return [item(v, f"{where} (item {i})") for i, v in enumerate(value)]
        return value

    return convert


def _by_shape(dict_arms: list[tuple[Any, Converter]], list_arms: list[tuple[Any, Converter]]) -> Converter:
    def pick(arms: list[tuple[Any, Converter]], value: Any, where: str) -> Any:
        if not arms:
            return value
        if len(arms) == 1:
            return arms[0][1](value, where)
        names = ", ".join(sorted(str(getattr(arm, "__name__", arm)) for arm, _ in arms))
        raise InvalidInput(
            f"Invalid {where}: its type allows several classes ({names}) and serialized data does "
            "not say which one to build; pass the object itself"
        )

    def convert(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return pick(dict_arms, value, where)
        if isinstance(value, list) and any(isinstance(v, dict) for v in value):
            return pick(list_arms, value, where)
        return value

    return convert
