"""Builders for Klaviyo JSON:API bodies and paged endpoints on requests-mock."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from klaviyo_spec.contract import split_top_level
from source_klaviyo import SourceKlaviyo
from source_klaviyo.clock import FixedClock, parse_klaviyo_datetime
from source_klaviyo.endpoints import KLAVIYO_API_URL, endpoint

API_KEY = "pk_unittest_7f3a9c2e4b1d8f6a0c5e9b3d7a1f4c8e"
# The clock every unit test's connector reads (tests of state and windows also run a year later).
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
A_YEAR_LATER = NOW + timedelta(days=365)


def source(now: datetime = NOW) -> SourceKlaviyo:
    """A connector whose clock reads `now` plus a random fraction of a second, as a real clock does: expectations
    are written in whole seconds, and a connector that compared a sub-second now with them would fail here."""
    return SourceKlaviyo(FixedClock(now + timedelta(microseconds=random.randrange(1, 1_000_000))))


def iso(moment: datetime) -> str:
    """A datetime as Klaviyo writes one in a record."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


TYPES = {
    "campaigns": "campaign",
    "templates": "template",
    "metrics": "metric",
    "lists": "list",
    "segments": "segment",
    "flows": "flow",
    "profiles": "profile",
    "events": "event",
    "tags": "tag",
    "tag-groups": "tag-group",
    "coupons": "coupon",
    "forms": "form",
    "catalog-items": "catalog-item",
    "catalog-variants": "catalog-variant",
    "catalog-categories": "catalog-category",
}


def config(**overrides: Any) -> dict[str, Any]:
    return {"api_key": API_KEY, **overrides}


def resource(
    endpoint_name: str,
    resource_id: str,
    attributes: Mapping[str, Any],
    relationships: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPES[endpoint_name],
        "id": resource_id,
        "attributes": dict(attributes),
        "links": {"self": f"{KLAVIYO_API_URL}api/{endpoint_name}/{resource_id}"},
    }
    if relationships is not None:
        body["relationships"] = {
            name: {
                "data": data,
                "links": {
                    "self": f"{KLAVIYO_API_URL}api/{endpoint_name}/{resource_id}/relationships/{name}",
                    "related": f"{KLAVIYO_API_URL}api/{endpoint_name}/{resource_id}/{name}",
                },
            }
            for name, data in relationships.items()
        }
    return body


def url(endpoint_name: str, revision: str = "2026-07-15", parent_id: str | None = None) -> Any:
    """The endpoint's URL; for a parent's children without `parent_id`, a pattern matching any parent's."""
    path = endpoint(revision, endpoint_name).path(revision, parent_id)
    if "{id}" not in path:
        return KLAVIYO_API_URL + path
    return re.compile(re.escape(KLAVIYO_API_URL + path).replace(re.escape("{id}"), "[^/?]+") + r"(\?.*)?$")


def serve_pages(
    api: Any,
    endpoint_name: str,
    pages: Sequence[list[Mapping[str, Any]]],
    revision: str = "2026-07-15",
    included: list[Mapping[str, Any]] | None = None,
) -> None:
    """Serve `pages` at the endpoint, linked by links.next carrying page[cursor] and the first request's query."""
    base = url(endpoint_name, revision)

    def respond(request: Any, context: Any) -> Mapping[str, Any]:
        query = dict(parse_qsl(urlsplit(request.url).query))
        index = int(query.pop("page[cursor]", "0"))
        links = {"self": request.url}
        if index + 1 < len(pages):
            links["next"] = f"{base}?{urlencode({**query, 'page[cursor]': index + 1})}"
        context.headers["Content-Type"] = "application/vnd.api+json"
        body: dict[str, Any] = {"data": pages[index], "links": links}
        if included is not None:
            body["included"] = included
        return body

    api.get(base, json=respond)


# Attributes only the current revision returns.
NEW_IN_2026 = {
    "templates": {"amp"},
    "lists": {"opt_in_process"},
    "segments": {"definition", "is_active", "is_processing", "is_starred"},
    "profiles": {"locale"},
}
# A metric-aggregates query Klaviyo would accept: January 2025's daily count of metric MET1.
QUERY = {
    "data": {
        "type": "metric-aggregate",
        "attributes": {
            "metric_id": "MET1",
            "measurements": ["count"],
            "filter": ["greater-or-equal(datetime,2025-01-01T00:00:00)", "less-than(datetime,2025-02-01T00:00:00)"],
        },
    }
}
# The metric every sample event belongs to, as `include=metric` returns it.
METRIC = {
    "type": "metric",
    "id": "MET1",
    "attributes": {"name": "Placed Order", "created": "2023-05-01T10:00:00+00:00"},
}


def sample(endpoint_name: str, index: int, updated: str, revision: str = "2026-07-15", **extra: Any) -> dict[str, Any]:
    """A realistic resource of the endpoint, as the revision returns it, last updated at `updated`."""
    created = "2023-05-01T10:00:00+00:00"
    attributes: dict[str, Any]
    relationships: dict[str, Any] | None = None
    if endpoint_name == "campaigns":
        attributes = {
            "name": f"Spring sale {index}",
            "status": "Sent",
            "archived": False,
            "audiences": {"included": ["XyZ123"], "excluded": []},
            "send_options": {"use_smart_sending": True},
            "tracking_options": {"add_tracking_params": False, "is_tracking_clicks": True, "is_tracking_opens": True},
            "send_strategy": {"method": "static", "datetime": updated},
            "created_at": created,
            "scheduled_at": updated,
            "updated_at": updated,
            "send_time": updated,
        }
        relationships = {"campaign-messages": [{"type": "campaign-message", "id": f"M{index}"}], "tags": []}
    elif endpoint_name == "templates":
        attributes = {
            "name": f"Welcome {index}",
            "editor_type": "CODE",
            "html": "<html><body>Hi</body></html>",
            "text": "Hi",
            "amp": None,
            "created": created,
            "updated": updated,
        }
    elif endpoint_name == "metrics":
        attributes = {
            "name": f"Placed Order {index}",
            "created": created,
            "updated": updated,
            "integration": {"id": "0eMvjm", "name": "Shopify", "category": "eCommerce"},
        }
    elif endpoint_name == "lists":
        attributes = {
            "name": f"Newsletter {index}",
            "created": created,
            "updated": updated,
            "opt_in_process": "double_opt_in",
        }
        relationships = {"tags": [{"type": "tag", "id": f"T{index}"}]}
    elif endpoint_name == "segments":
        attributes = {
            "name": f"VIP {index}",
            "definition": {"condition_groups": []},
            "created": created,
            "updated": updated,
            "is_active": True,
            "is_processing": False,
            "is_starred": False,
        }
        relationships = {"tags": []}
    elif endpoint_name == "flows":
        attributes = {
            "name": f"Abandoned cart {index}",
            "status": "live",
            "archived": False,
            "created": created,
            "updated": updated,
            "trigger_type": "Metric",
        }
        relationships = {"flow-actions": [{"type": "flow-action", "id": f"A{index}"}], "tags": []}
    elif endpoint_name == "events":
        attributes = {
            "timestamp": int(datetime.fromisoformat(updated).timestamp()),
            "event_properties": {"$value": 42.5, "$event_id": f"order-{index}", "ItemNames": ["Widget"]},
            "datetime": updated,
            "uuid": f"00000000-0000-4000-8000-{index:012d}",
        }
        relationships = {
            "profile": {"type": "profile", "id": f"PRO{index % 3}"},
            "metric": {"type": "metric", "id": METRIC["id"]},
        }
    elif endpoint_name == "profiles":
        attributes = {
            "email": f"ada{index}@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "locale": "en-GB",
            "created": updated,
            "updated": updated,
            "location": {"city": "London", "country": "United Kingdom", "latitude": "51.5", "longitude": "-0.12"},
            "properties": {"plan": "pro"},
            "subscriptions": {"email": {"marketing": {"can_receive_email_marketing": True, "consent": "SUBSCRIBED"}}},
        }
    elif endpoint_name == "tags":
        attributes = {"name": f"VIP {index}"}
        relationships = {"tag-group": {"type": "tag-group", "id": "TG1"}}
    elif endpoint_name == "tag-groups":
        attributes = {"name": f"Season {index}", "exclusive": False, "default": index == 0}
    elif endpoint_name == "coupons":
        attributes = {"external_id": f"SPRING{index}", "description": "10% off"}
    elif endpoint_name == "forms":
        attributes = {
            "name": f"Signup {index}",
            "status": "live",
            "ab_test": False,
            "created_at": created,
            "updated_at": updated,
        }
    elif endpoint_name in ("catalog-items", "catalog-variants"):
        attributes = {
            "external_id": f"SKU-{index}",
            "title": f"Widget {index}",
            "description": "A widget",
            "price": 9.99,
            "url": f"https://example.com/p/{index}",
            "image_full_url": None,
            "image_thumbnail_url": None,
            "images": [],
            "custom_metadata": {"color": "red"},
            "published": True,
            "created": created,
            "updated": updated,
        }
        if endpoint_name == "catalog-variants":
            attributes.update({"sku": f"SKU-{index}-S", "inventory_policy": 0, "inventory_quantity": 3})
            relationships = {"item": {"type": "catalog-item", "id": "$custom:::$default:::ITEM1"}}
    elif endpoint_name == "catalog-categories":
        attributes = {"external_id": f"CAT-{index}", "name": f"Gadgets {index}", "updated": updated}
    else:
        raise ValueError(endpoint_name)
    if revision != "2026-07-15":
        attributes = {k: v for k, v in attributes.items() if k not in NEW_IN_2026.get(endpoint_name, set())}
        if endpoint_name == "campaigns":  # 2023-10-15 shaped these two objects differently
            attributes["tracking_options"] = {
                "is_tracking_opens": True,
                "is_tracking_clicks": True,
                "add_utm": False,
                "utm_params": [],
            }
            attributes["send_strategy"] = {
                "method": "static",
                "options_static": {"datetime": updated, "is_local": False},
            }
    attributes.update(extra)
    return resource(endpoint_name, f"{endpoint_name[:3].upper()}{index}", attributes, relationships)


def run_read(
    cfg: Mapping[str, Any],
    streams: Mapping[str, Any],
    state: list[Any] | None = None,
    expect_failure: bool = False,
    now: datetime = NOW,
) -> Any:
    """`read` through the CDK's entrypoint, as the CLI runs it, for {stream name: SyncMode}, at `now`."""
    from airbyte_cdk.test.catalog_builder import CatalogBuilder
    from airbyte_cdk.test.entrypoint_wrapper import read
    from airbyte_cdk.test.models.outcome import ExpectedOutcome

    catalog = CatalogBuilder()
    for name, mode in streams.items():
        catalog.with_stream(name, mode)
    outcome = ExpectedOutcome.EXPECT_EXCEPTION if expect_failure else ExpectedOutcome.EXPECT_SUCCESS
    return read(source(now), cfg, catalog.build(), state, expected_outcome=outcome)


def stream_state(output: Any, stream: str) -> dict[str, Any] | None:
    """The last state the read emitted for `stream`."""
    states = [
        m.state.stream.stream_state for m in output.state_messages if m.state.stream.stream_descriptor.name == stream
    ]
    return dict(states[-1].__dict__) if states else None


def is_probe(request: Any) -> bool:
    """The one-record request check and every read open with (on endpoints that take page[size])."""
    return dict(parse_qsl(urlsplit(request.url).query)).get("page[size]") == "1"


def serve_probe(api: Any, endpoint_name: str, status: int = 200, revision: str = "2026-07-15") -> None:
    body = {"data": [], "links": {"self": url(endpoint_name, revision)}} if status == 200 else error_body(status)
    api.get(url(endpoint_name, revision), additional_matcher=is_probe, status_code=status, json=body)


def error_body(status: int, detail: str = "", parameter: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "id": "e1",
        "status": status,
        "code": "error",
        "title": "Error",
        "detail": detail or f"HTTP {status}",
    }
    if parameter:
        error["source"] = {"parameter": parameter}
    return {"errors": [error]}


def all_output(output: Any) -> str:
    """Every message and log line of a run, as one string (to look for what must never appear)."""
    import orjson
    from airbyte_cdk.models import AirbyteMessageSerializer

    return "\n".join(orjson.dumps(AirbyteMessageSerializer.dump(m)).decode() for m in output._messages or [])


def data_requests(api: Any) -> list[Mapping[str, Any]]:
    """The read's requests as {path, query, headers}, without the access probe a read opens with.

    The probe is the read's first request to each path."""
    probed, calls = set(), []
    for call in api.request_history:
        path = urlsplit(call.url).path
        if path not in probed:
            probed.add(path)
            continue
        query = dict(parse_qsl(urlsplit(call.url).query))
        calls.append({"path": path, "query": query, "headers": call.headers, "timeout": call.timeout})
    return calls


def filter_terms(query: Mapping[str, str]) -> list[str]:
    return split_top_level(query["filter"]) if "filter" in query else []


def bound(terms: list[str], operator: str) -> datetime:
    (term,) = [t for t in terms if t.startswith(operator + "(")]
    return parse_klaviyo_datetime(term[len(operator) + 1 : -1].split(",", 1)[1])


def assert_near(value: datetime, expected: datetime, seconds: int = 120) -> None:
    assert abs((value - expected).total_seconds()) < seconds, f"{value} is not within {seconds}s of {expected}"
