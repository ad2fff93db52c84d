"""Mermaid text of a wrapper's Haystack pipeline, made offline from the pipeline graph."""

from __future__ import annotations

from typing import Any, Optional


def mermaid_text(wrapper: Any) -> Optional[str]:
    pipeline = getattr(wrapper, "pipeline", None)
    graph = getattr(pipeline, "graph", None)
    if graph is None:
        return None
    try:
        from haystack.core.pipeline.draw import _to_mermaid_text

        return _to_mermaid_text(graph.copy(), {})
    except Exception:
        lines = ["graph TD;"]
        for sender, receiver, data in graph.edges(data=True):
            label = (
                f"{data.get('from_socket').name}->{data.get('to_socket').name}"
                if data.get("from_socket")
                else ""
            )
            lines.append(f'{sender} --"{label}"--> {receiver}')
        lines.extend(f"{node}" for node in graph.nodes if not any(True for _ in graph.edges(node)))
        return "\n".join(lines)
