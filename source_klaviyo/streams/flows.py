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
    requests for every flow, rather than one per flow at Klaviyo's 60 a minute.
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
        return flows.ids("flow_action_ids")
