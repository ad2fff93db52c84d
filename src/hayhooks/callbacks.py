"""Ready-made hooks for ``streaming_generator`` (the ``default_on_*`` helpers of Hayhooks 2.x).

Pass them as ``on_tool_call_start=`` / ``on_tool_call_end=`` / ``on_pipeline_end=`` to show an agent's
tool calls in Open WebUI: a status line while a tool runs, then its arguments and result in a
collapsible block (or an error toast); and the pipeline's final result as text.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Union

from hayhooks.open_webui import (
    OpenWebUIEvent,
    create_details_tag,
    create_notification_event,
    create_status_event,
)


def default_on_tool_call_start(
    tool_name: str, arguments: Optional[str], tool_call_id: Optional[str]
) -> Optional[OpenWebUIEvent]:
    """A status line "Calling '<tool>' tool..." (nothing for a call without a name)."""
    if not tool_name:
        return None
    return create_status_event(description=f"Calling '{tool_name}' tool...", done=False)


def default_on_tool_call_end(
    tool_name: str, arguments: Any, result: Any, error: bool
) -> list[Union[OpenWebUIEvent, str]]:
    """On success: the status line done, plus a details block with arguments and response.
    On error: the status line hidden and an error toast."""
    if error:
        return [
            create_status_event(description=f"Called '{tool_name}' tool", done=True, hidden=True),
            create_notification_event(content=f"Error calling '{tool_name}' tool", notification_type="error"),
        ]
    details = f"```\nArguments:\n{arguments}\n\nResponse:\n{result}\n```"
    return [
        create_status_event(description=f"Called '{tool_name}' tool", done=True),
        create_details_tag(
            tool_name=tool_name, summary=f"Tool call result for '{tool_name}'", content=details
        ),
    ]


def default_on_pipeline_end(result: Any) -> str:
    """The run's result as text: strings as they are, anything JSON-able as JSON, else ``str()``."""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=_plain, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


def _plain(value: Any) -> Any:
    for method in ("model_dump", "to_dict"):
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    return str(value)
