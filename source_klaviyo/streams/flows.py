"""Flows, every flow's actions, and every action's messages."""

from __future__ import annotations

from collections.abc import Iterator

from source_klaviyo.streams.base import WithArchived
from source_klaviyo.streams.children import ChildStream, ParentCollection, archived_and_not


class Flows(WithArchived):
    """Archived and unarchived flows, with the ids of their actions and tags."""

    name = "flows"
    endpoint_name = "flows"
    time_field = "updated"
    relationships = {"flow-actions": "flow_action_ids", "tags": "tag_ids"}
    included = ("flow-actions", "tags")


class FlowActions(ChildStream):
    """The actions of every flow, archived flows too; incremental on `updated` per flow."""

    name = "flow_actions"
    endpoint_name = "flows/{id}/flow-actions"
    parent_field = "flow_id"
    cursor_field = "updated"
    relationships = {"flow": "flow_id", "flow-messages": "flow_message_ids"}

    def parents(self) -> Iterator[str]:
        return ParentCollection(self, "flows", archived_and_not()).ids()


class FlowMessages(ChildStream):
    """The messages of every flow action; incremental on `updated` per action.

    The actions come from the flows' own listing (include=flow-actions): a few
    requests for every flow, rather than one per flow at Klaviyo's 60 a minute. A
    flow the listing gives no linkage for (a server may leave it out) has its actions
    read from /api/flows/{id}/flow-actions, so missing linkage cannot empty the stream.
    """

    name = "flow_messages"
    endpoint_name = "flow-actions/{id}/flow-messages"
    parent_field = "flow_action_id"
    cursor_field = "updated"
    relationships = {"flow-action": "flow_action_id", "template": "template_id"}

    def parents(self) -> Iterator[str]:
        flows = ParentCollection(
            self, "flows", archived_and_not(), ("flow-actions",), {"flow-actions": "flow_action_ids"}
        )
        seen: dict[str, None] = {}
        read = 0
        for flow in flows.all_records():
            read += 1
            linked = flow.get("flow_action_ids")
            actions = linked if isinstance(linked, list) else self._actions_of(flow["id"])
            for action in actions:
                if action not in seen:
                    seen[action] = None
                    yield action
        if read and not seen:
            self.logger.warning(
                f"Stream {self.name} found no flow actions in the {read} flows it read, so it has no messages to read."
            )

    def _actions_of(self, flow_id: str) -> Iterator[str]:
        """The ids of a flow's actions, from the flow's own actions endpoint."""
        return ParentCollection(self, FlowActions.endpoint_name, parent_id=flow_id).ids()
