"""Records as JSON:API resources, shaped the way each revision's spec describes them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from integration_tests.klaviyo_sim.data import Dataset, Record, make_id

CURRENT, RETIRED = "2026-07-15", "2023-10-15"

TYPES = {
    "campaigns": "campaign",
    "campaign-messages": "campaign-message",
    "templates": "template",
    "profiles": "profile",
    "events": "event",
    "metrics": "metric",
    "lists": "list",
    "segments": "segment",
    "flows": "flow",
    "flow-actions": "flow-action",
    "flow-messages": "flow-message",
    "tags": "tag",
    "tag-groups": "tag-group",
    "coupons": "coupon",
    "coupon-codes": "coupon-code",
    "forms": "form",
    "catalog-items": "catalog-item",
    "catalog-variants": "catalog-variant",
    "catalog-categories": "catalog-category",
}
# Attributes the retired revision does not have. (Records whose shape differs more between the
# revisions keep their 2023-10-15 attributes in record.extra["retired"].)
NOT_IN_RETIRED = {
    "templates": {"amp"},
    "lists": {"opt_in_process"},
    "segments": {"definition", "is_active", "is_processing", "is_starred"},
    "profiles": {"locale"},
}
# Relationships the two revisions write alike.
BOTH_REVISIONS = {
    "tags": {
        "tag-group": "tag-group",
        "lists": "list",
        "segments": "segment",
        "campaigns": "campaign",
        "flows": "flow",
    },
    "tag-groups": {"tags": "tag"},
    "coupon-codes": {"coupon": "coupon", "profile": "profile"},
    "catalog-items": {"variants": "catalog-variant"},
    "catalog-variants": {"item": "catalog-item"},
    "catalog-categories": {"items": "catalog-item"},
}
# Relationship name -> JSON:API type of the related resources, per collection and revision.
RELATIONSHIPS = {
    CURRENT: {
        "campaigns": {"campaign-messages": "campaign-message", "tags": "tag"},
        "campaign-messages": {"campaign": "campaign", "template": "template"},
        "metrics": {"flow-triggers": "flow"},
        "lists": {"profiles": "profile", "tags": "tag", "flow-triggers": "flow"},
        "segments": {"profiles": "profile", "tags": "tag", "flow-triggers": "flow"},
        "flows": {"flow-actions": "flow-action", "tags": "tag"},
        "flow-actions": {"flow": "flow", "flow-messages": "flow-message"},
        "flow-messages": {"flow-action": "flow-action", "template": "template"},
        "profiles": {
            "lists": "list",
            "segments": "segment",
            "push-tokens": "push-token",
            "conversations": "conversation",
        },
        "events": {"profile": "profile", "metric": "metric", "attributions": "attribution"},
        **BOTH_REVISIONS,
        "forms": {"form-versions": "form-version"},
    },
    RETIRED: {
        "campaigns": {"campaign-messages": "campaign-message", "tags": "tag"},
        "campaign-messages": {"campaign": "campaign", "template": "template"},
        "lists": {"profiles": "profile", "tags": "tag"},
        "segments": {"profiles": "profile", "tags": "tag"},
        "flows": {"flow-actions": "flow-action", "tags": "tag"},
        "flow-actions": {"flow": "flow", "flow-messages": "flow-message"},
        "flow-messages": {"flow-action": "flow-action", "template": "template"},
        "profiles": {"lists": "list", "segments": "segment"},
        "events": {"profile": "profile", "metric": "metric"},
        **BOTH_REVISIONS,
    },
}
# To-one relationships (their linkage is an object, not a list).
TO_ONE = {"profile", "metric", "campaign", "template", "flow", "flow-action", "tag-group", "coupon", "item"}
# To-many relationships 2026-07-15 sends with their linkage even when not included; every other
# to-many relationship comes as links only unless the request includes it (include=tags, ...).
# 2023-10-15 requires `data` in every relationship it describes, so it always sends the linkage.
LINKAGE_ALWAYS = {"campaign-messages", "flow-actions", "flow-messages"}
# include= name -> the collection whose records it adds to `included` (other names add nothing).
INCLUDED_COLLECTION = {
    "campaign-messages": "campaign-messages",
    "tags": "tags",
    "flow-actions": "flow-actions",
    "campaign": "campaigns",
    "template": "templates",
    "tag-group": "tag-groups",
    "coupon": "coupons",
    "variants": "catalog-variants",
    "metric": "metrics",
    "profile": "profiles",
}


def path_of(collection: str, revision: str) -> str:
    return f"/api/{collection}/" if revision == RETIRED else f"/api/{collection}"


def render(
    collection: str,
    record: Record,
    revision: str,
    base: str,
    extra_attributes: Mapping[str, Any] = {},
    included: Collection[str] = (),
    linkage: bool = True,
) -> dict[str, Any]:
    """One resource object: type, id, attributes, relationships and links. `included` names the
    relationships the request includes, whose linkage is then sent; with `linkage` False (a server that
    leaves it out) to-many relationships come as links only."""
    retired = record.extra.get("retired") if revision == RETIRED else None
    attributes = dict(retired if retired is not None else record.attributes)
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
        rendered = {}
        for name, related_type in relationships.items():
            relationship = _relationship(name, related_type, record, self_link, revision, name in included, linkage)
            if relationship is not None:
                rendered[name] = relationship
        resource["relationships"] = rendered
    return resource


def _relationship(
    name: str, related_type: str, record: Record, self_link: str, revision: str, included: bool, linkage: bool
) -> dict[str, Any] | None:
    links = {"self": f"{self_link}relationships/{name}/", "related": f"{self_link}{name}/"}
    ids = record.relationships.get(name, [])
    if name in TO_ONE:
        if ids:
            return {"data": {"type": related_type, "id": ids[0]}, "links": links}
        # Nothing to link (an unassigned coupon code's profile): 2023-10-15 would need `data`.
        return None if revision == RETIRED else {"links": links}
    if not linkage or (revision == CURRENT and not included and name not in LINKAGE_ALWAYS):
        return {"links": links}
    return {"data": [{"type": related_type, "id": related_id} for related_id in ids], "links": links}


def render_account(dataset: Dataset, base: str) -> dict[str, Any]:
    """The account every key belongs to; its timezone is the one reports count local days in."""
    account_id = make_id(60, 0, dataset.seed)
    return {
        "type": "account",
        "id": account_id,
        "attributes": {
            "test_account": False,
            "contact_information": {
                "default_sender_name": "Example",
                "default_sender_email": "news@example.com",
                "website_url": "https://shop.example.com",
                "organization_name": "Example Corp",
                "street_address": {
                    "address1": "1 Main St",
                    "address2": "Floor 2",
                    "city": "Boston",
                    "region": "MA",
                    "country": "US",
                    "zip": "02110",
                },
            },
            "industry": "Retail",
            "timezone": dataset.sizes.timezone,
            "preferred_currency": "USD",
            "public_api_key": f"Sim{account_id}",
            "locale": "en-US",
        },
        "links": {"self": f"{base}/api/accounts/{account_id}/"},
    }


def render_attribution(event: Record, base: str) -> dict[str, Any]:
    """The attribution resource of an event (2026-07-15 include=attributions): the event, and the
    campaign and campaign message or the flow and flow message it is attributed to."""
    attribution = event.extra["attribution"]
    attribution_id = event.relationships["attributions"][0]
    self_link = f"{base}/api/attributions/{attribution_id}/"

    def linked(name: str, related_type: str, related_id: str) -> dict[str, Any]:
        links = {"self": f"{self_link}relationships/{name}/", "related": f"{self_link}{name}/"}
        return {"data": {"type": related_type, "id": related_id}, "links": links}

    relationships = {"event": linked("event", "event", event.id)}
    for name in ("campaign", "campaign-message", "flow", "flow-message"):
        if attribution.get(name):
            relationships[name] = linked(name, name, attribution[name])
    return {"type": "attribution", "id": attribution_id, "relationships": relationships, "links": {"self": self_link}}


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
    options: dict[str, Any] = {
        "send_options": {"use_smart_sending": True},
        "send_strategy": {"method": "static", "datetime": send_time},
    }
    if channel == "email":
        options["tracking_options"] = {
            "add_tracking_params": False,
            "is_tracking_clicks": True,
            "is_tracking_opens": True,
        }
    elif channel == "sms":
        options["tracking_options"] = {"add_tracking_params": False, "is_tracking_clicks": True}
    # mobile push campaigns have no tracking options (the attribute is optional)
    return options


def profile_extras(record: Record, wanted: set[str], revision: str) -> dict[str, Any]:
    """The attributes a profile request asks for through additional-fields[profile]."""
    extras: dict[str, Any] = {}
    created = record.attributes["created"]
    if "subscriptions" in wanted:
        suppression = record.extra.get("suppression", [])
        list_suppressions = record.extra.get("list_suppressions", [])
        unsubscribed = any(item["reason"] == "UNSUBSCRIBE" for item in suppression)
        changes = [created] + [item["timestamp"] for item in suppression + list_suppressions]
        email = {
            "marketing": {
                "can_receive_email_marketing": not suppression,
                "consent": "UNSUBSCRIBED" if unsubscribed else "SUBSCRIBED",
                "consent_timestamp": created,
                "last_updated": max(changes),
                "method": "PREFERENCE_PAGE",
                "double_optin": True,
                "suppression": suppression,
                "list_suppressions": list_suppressions,
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
