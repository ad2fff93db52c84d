"""Step checkpoints for Haystack agents, through the Agent's public hooks.

Build the agent with ``hooks=durable_agent_hooks()``: after every tool step its conversation
(messages, step count, token usage, tool call counts) is saved to the running execution, and when
``context.run_agent`` runs it again after a crash, the saved conversation is restored before the
first LLM call, so completed tool calls are not made again. Outside a durable execution the
hooks do nothing, so the same agent also serves ``/run``.
"""

from __future__ import annotations

from typing import Any

from haystack.components.agents.state.state import State
from haystack.hooks import AFTER_TOOL, BEFORE_RUN, hook

from hayhooks.durable.context import _revive, _serialise, current_durable_context

_SAVED_KEYS = ("messages", "step_count", "token_usage", "tool_call_counts")


@hook
def restore_durable_agent_state(state: State) -> None:
    """``before_run``: continue from the last saved step of this execution's agent run."""
    context = current_durable_context()
    if context is None:
        return
    saved = context.get_checkpoint(context._agent_state_key)
    if not saved:
        return
    for key, value in _revive(saved).items():
        state.data[key] = value


@hook
def checkpoint_durable_agent_state(state: State) -> None:
    """``after_tool``: save the conversation once a step's tool calls completed."""
    context = current_durable_context()
    if context is None:
        return
    data = {key: state.data.get(key) for key in _SAVED_KEYS}
    data["step_count"] = int(data.get("step_count") or 0) + 1  # the step completes with its tools
    context._save(context._agent_state_key, _serialise(data))
    context._check_cancelled()


def durable_agent_hooks() -> dict[str, list[Any]]:
    """The ``hooks=`` of an Agent whose steps are checkpointed by ``context.run_agent``."""
    return {BEFORE_RUN: [restore_durable_agent_state], AFTER_TOOL: [checkpoint_durable_agent_state]}
