"""Durable runs: executions that survive crashes, restarts and deploys, on every worker.

``context`` (what wrappers use), ``store`` (the ``ExecutionStore`` interface; ``sqlite_store`` and
``redis_store`` implement it), ``worker`` (``DurableRuntime``: claims, leases, retries), ``spec``
(the wrapper's durable method), ``haystack_steps`` (checkpointed pipeline runs).
"""

from hayhooks.durable.context import DurableContext, current_durable_context, durable_streaming_callback
from hayhooks.durable.errors import ExecutionCancelled, ExecutionSuspended, RetryExecution

__all__ = [
    "DurableContext",
    "ExecutionCancelled",
    "ExecutionSuspended",
    "RetryExecution",
    "current_durable_context",
    "durable_streaming_callback",
]
