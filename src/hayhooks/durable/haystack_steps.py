"""Checkpointed Haystack pipeline runs, built on Haystack's public snapshot API.

``Pipeline.run(break_point=...)`` pauses before a component and raises ``BreakpointException``
carrying a ``PipelineSnapshot``; ``Pipeline.run(pipeline_snapshot=...)`` resumes from one. Stepping
a pipeline with a break point before each component not yet run gives a snapshot at every
component boundary: persisted, it lets another worker resume without re-running what completed.
A failing component raises ``PipelineRuntimeError`` with a snapshot too, so a retry resumes there.

Every Haystack name this relies on is imported here and pinned by ``tests/test_durable_haystack.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import networkx as nx
from haystack.core.errors import BreakpointException, PipelineRuntimeError
from haystack.dataclasses.breakpoints import Breakpoint, PipelineSnapshot

SaveSnapshot = Callable[[dict[str, Any]], None]
BeforeStep = Callable[[str], None]


def component_order(pipeline: Any) -> Optional[list[str]]:
    """Components in dependency order, or None for a pipeline with loops (checkpointed only on
    failure and at explicit ``checkpoint_before`` components)."""
    try:
        return list(nx.topological_sort(pipeline.graph))
    except nx.NetworkXUnfeasible:
        return None


def _next_break_point(order: list[str], snapshot: Optional[PipelineSnapshot]) -> Optional[Breakpoint]:
    visits = snapshot.pipeline_state.component_visits if snapshot else {}
    paused = snapshot.break_point.component_name if snapshot else (order[0] if order else None)
    for name in order:
        if name != paused and visits.get(name, 0) == 0:
            return Breakpoint(component_name=name, visit_count=0)
    return None


def _discard(_: PipelineSnapshot) -> Optional[str]:
    """Snapshots go to the execution store, never to files."""
    return None


def run_stepwise(
    pipeline: Any,
    data: dict[str, Any],
    saved: Optional[dict[str, Any]],
    save: SaveSnapshot,
    *,
    include_outputs_from: Optional[set[str]] = None,
    checkpoint_before: Optional[list[str]] = None,
    before_step: Optional[BeforeStep] = None,
) -> dict[str, Any]:
    """Run ``pipeline`` from ``saved`` (a snapshot dict) or from the start, saving a snapshot at each
    component boundary. Returns the pipeline's outputs."""
    order = list(checkpoint_before) if checkpoint_before is not None else (component_order(pipeline) or [])
    snapshot = PipelineSnapshot.from_dict(saved) if saved else None
    while True:
        break_point = _next_break_point(order, snapshot)
        kwargs: dict[str, Any] = {"snapshot_callback": _discard}
        if snapshot is not None:
            kwargs["pipeline_snapshot"] = snapshot
        if break_point is not None:
            kwargs["break_point"] = break_point
        try:
            return pipeline.run(data, include_outputs_from=include_outputs_from, **kwargs)
        except BreakpointException as paused:
            if paused.pipeline_snapshot is None:
                raise
            snapshot = paused.pipeline_snapshot
            save(snapshot.to_dict())
            if before_step is not None:
                before_step(snapshot.break_point.component_name)
        except PipelineRuntimeError as failed:
            failure = getattr(failed, "pipeline_snapshot", None)
            if isinstance(failure, PipelineSnapshot):
                save(failure.to_dict())
            raise
