"""Records as JSON:API resources, shaped the way each revision's spec describes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integration_tests.klaviyo_sim.data import Record

CURRENT, RETIRED = "2026-07-15", "2023-10-15"

TYPES = {
    "campaigns": "campaign",
    "templates": "template",
    "profiles": "profile",
    "events": "event",
    "metrics": "metric",
    "lists": "list",
    "segments": "segment",
    "flows": "flow",
}
# Attributes the retired revision does not have.
NOT_IN_RETIRED = {
    "templates": {"amp"},
    "lists": {"opt_in_process"},
    "segments": {"definition", "is_active", "is_processing", "is_starred"},
    "profiles": {"locale"},
}
# Relationship name -> JSON:API type of the related resources, per collection and revision.
RELATIONSHIPS = {
    CURRENT: {
        "campaigns": {"campaign-messages": "campaign-message", "tags": "tag"},
        "metrics": {"flow-triggers": "flow"},
        "lists": {"profiles": "profile", "tags": "tag", "flow-triggers": "flow"},
        "segments": {"profiles": "profile", "tags": "tag", "flow-triggers": "flow"},
        "flows": {"flow-actions": "flow-action", "tags": "tag"},
        "profiles": {
            "lists": "list",
            "segments": "segment",
            "push-tokens": "push-token",
            "conversations": "conversation",
        },
        "events": {"profile": "profile", "metric": "metric", "attributions": "attribution"},
    },
    RETIRED: {
        "campaigns": {"campaign-messages": "campaign-message", "tags": "tag"},
        "lists": {"profiles": "profile", "tags": "tag"},
        "segments": {"profiles": "profile", "tags": "tag"},
        "flows": {"flow-actions": "flow-action", "tags": "tag"},
        "profiles": {"lists": "list", "segments": "segment"},
        "events": {"profile": "profile", "metric": "metric"},
    },
}
# To-one relationships (their linkage is an object, not a list).
TO_ONE = {"profile", "metric"}
# Relationships Klaviyo sends as links only (the linkage would be huge or needs include=).
LINKS_ONLY = {"profiles", "lists", "segments", "push-tokens", "conversations", "flow-triggers"}


def path_of(collection: str, revision: str) -> str:
    return f"/api/{collection}/" if revision == RETIRED else f"/api/{collection}"


def render(
    collection: str, record: Record, revision: str, base: str, extra_attributes: Mapping[str, Any] = {}
) -> dict[str, Any]:
    """One resource object: type, id, attributes, relationships and links."""
    attributes = dict(record.attributes)
    for name in NOT_IN_RETIRED.get(collection, ()) if revision == RETIRED else ():
        attributes.pop(name, None)
    if collection == "campaigns":
        attributes.update(_campaign_options(attributes, record.fields["messages.channel"], revision))
    attributes.update(extra_attributes)
    self_link = f"{base}{path_of(collection, revision).rstrip('/')}/{record.id}/"
    resource: dict[str, Any] = {
        "type": TYPES[collection],
        "id": record.id,
        "attributes": attributes,
        "links": {"self": self_link},
    }
    relationships = RELATIONSHIPS[revision].get(collection)
    if relationships:
        resource["relationships"] = {
            name: _relationship(name, related_type, record, self_link, revision)
            for name, related_type in relationships.items()
        }
    return resource


def _relationship(name: str, related_type: str, record: Record, self_link: str, revision: str) -> dict[str, Any]:
    links = {"self": f"{self_link}relationships/{name}/", "related": f"{self_link}{name}/"}
    if name in LINKS_ONLY and revision == CURRENT:
        return {"links": links}
    ids = record.relationships.get(name, [])
    if name in TO_ONE:
        data: Any = {"type": related_type, "id": ids[0]} if ids else None
    else:
        data = [{"type": related_type, "id": related_id} for related_id in ids]
    return {"data": data, "links": links}


def _campaign_options(attributes: Mapping[str, Any], channel: str, revision: str) -> dict[str, Any]:
    """Send and tracking options, whose shapes differ by channel and by revision."""
    send_time = attributes["send_time"]
    if revision == RETIRED:
        tracking = (
            {"is_tracking_opens": True, "is_tracking_clicks": True, "add_utm": False, "utm_params": []}
            if channel == "email"
            else {"is_tracking_clicks": True, "add_utm": False, "utm_params": []}
        )
        return {
            "send_options": {"use_smart_sending": True, "ignore_unsubscribes": False}
            if channel == "email"
            else {"use_smart_sending": True},
            "tracking_options": tracking,
            "send_strategy": {
                "method": "static",
                "options_static": {"datetime": send_time, "is_local": False, "send_past_recipients_immediately": False},
            },
        }
    tracking = (
        {"add_tracking_params": False, "is_tracking_clicks": True, "is_tracking_opens": True}
        if channel == "email"
        else {"add_tracking_params": False, "is_tracking_clicks": True}
    )
    return {
        "send_options": {"use_smart_sending": True},
        "tracking_options": tracking,
        "send_strategy": {"method": "static", "datetime": send_time},
    }


def profile_extras(record: Record, wanted: set[str], revision: str) -> dict[str, Any]:
    """The attributes a profile request asks for through additional-fields[profile]."""
    extras: dict[str, Any] = {}
    created = record.attributes["created"]
    if "subscriptions" in wanted:
        email = {
            "marketing": {
                "can_receive_email_marketing": True,
                "consent": "SUBSCRIBED",
                "consent_timestamp": created,
                "last_updated": created,
                "method": "PREFERENCE_PAGE",
                "double_optin": True,
                "suppression": [],
                "list_suppressions": [],
            }
        }
        sms = {
            "marketing": {
                "can_receive_sms_marketing": False,
                "consent": "NEVER_SUBSCRIBED",
                "consent_timestamp": created,
                "method": "TEXT",
                "last_updated": created,
            }
        }
        extras["subscriptions"] = {"email": email, "sms": sms}
    if "predictive_analytics" in wanted:
        orders = len(record.id) % 5
        extras["predictive_analytics"] = {
            "historic_clv": 93.87,
            "predicted_clv": 27.24,
            "total_clv": 121.11,
            "historic_number_of_orders": orders,
            "predicted_number_of_orders": 0.54,
            "average_days_between_orders": 189.0,
            "average_order_value": 31.29,
            "churn_probability": 0.36,
            "expected_date_of_next_order": record.attributes["updated"],
        }
        if revision == CURRENT:
            extras["predictive_analytics"]["ranked_channel_affinity"] = ["email", "sms"]
    return extras
