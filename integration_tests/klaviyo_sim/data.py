"""A Klaviyo account's data, generated deterministically from a seed and a pinned `now`.

Small collections (campaigns and their messages, templates, lists, segments,
flows with their actions and messages, metrics, tags and tag groups, coupons
and their codes, forms, catalog items, variants and categories) are
materialised as records, listed in `COLLECTIONS`. Profiles keep their
timestamps (and their few suppressions) in arrays and dicts and render the rest
on demand; list and segment membership is drawn per list when first asked for;
events are never stored at all: event i is a pure function of (seed, i) and
events are numbered in time order, so a datetime range is a range of indexes
found by binary search. A million events cost a few MB.

Every record carries `times` (epoch seconds per time field) for filtering,
`fields` (the values its endpoint can filter on, including what links it to
its parent: `campaign.id`, `flow.id`, `flow-action.id`, `coupon.id`, `item.id`)
and `relationships` (related ids by relationship name, e.g. `tags`).
"""

from __future__ import annotations

import bisect
import random
import zlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

MASK = (1 << 64) - 1
DAY = 86_400
YEAR = 365 * DAY
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

METRICS = [
    # name, integration, share of events
    ("Placed Order", "Shopify", 8),
    ("Ordered Product", "Shopify", 8),
    ("Viewed Product", "Shopify", 20),
    ("Started Checkout", "Shopify", 6),
    ("Active on Site", "API", 18),
    ("Received Email", "Klaviyo", 18),
    ("Opened Email", "Klaviyo", 12),
    ("Clicked Email", "Klaviyo", 5),
    ("Received SMS", "Klaviyo", 3),
    ("Subscribed to List", "Klaviyo", 1),
    ("Unsubscribed", "Klaviyo", 1),
]
FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Tim"]
LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Berners-Lee",
]
CITIES = [
    ("Boston", "Massachusetts", "United States", "02110"),
    ("Lyon", "Auvergne-Rhone-Alpes", "France", "69001"),
    ("Toronto", "Ontario", "Canada", "M5H"),
    ("Leeds", "England", "United Kingdom", "LS1"),
]


def mix(*values: int) -> int:
    """splitmix64 over the values: a fast, well-spread, deterministic hash of small integers."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state + value * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & MASK
        state ^= state >> 30
        state = (state * 0xBF58476D1CE4E5B9) & MASK
        state ^= state >> 27
        state = (state * 0x94D049BB133111EB) & MASK
        state ^= state >> 31
    return state


def make_id(kind: int, index: int, seed: int, width: int = 6) -> str:
    """A Klaviyo-looking id, unique per (kind, index): an odd multiplier is a bijection modulo 62**width."""
    space = 62**width
    number = (index * 0x5DEECE66D + kind * 7_919 + seed * 104_729) % space
    number = (number * 1_000_003) % space  # 1_000_003 is coprime with 62
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


CHANNELS = ("sms", "email", "mobile_push")  # campaign i is sent on CHANNELS[i % 3]
SUPPRESSION_REASONS = ("HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED")
LIST_SUPPRESSION_REASONS = ("UNSUBSCRIBE", "USER_SUPPRESSED")
TAG_WORDS = ["Holiday", "VIP", "Newsletter", "Promo", "Welcome", "Win-back", "Seasonal", "Launch", "Survey", "Loyalty"]
# Materialised collections: Dataset.collection(name) lists their visible records.
COLLECTIONS = (
    "metrics",
    "templates",
    "tag-groups",
    "tags",
    "flows",
    "flow-actions",
    "flow-messages",
    "lists",
    "segments",
    "campaigns",
    "campaign-messages",
    "coupons",
    "coupon-codes",
    "forms",
    "catalog-categories",
    "catalog-items",
    "catalog-variants",
)
# child collection -> (parent collection, the child's field holding the parent id)
PARENTS = {
    "campaign-messages": ("campaigns", "campaign.id"),
    "flow-actions": ("flows", "flow.id"),
    "flow-messages": ("flow-actions", "flow-action.id"),
    "coupon-codes": ("coupons", "coupon.id"),
    "catalog-variants": ("catalog-items", "item.id"),
    "tags": ("tag-groups", "tag-group.id"),
}
# relationship name -> the collection its ids belong to (to scrub a deleted record from the others)
RELATED_COLLECTION = {
    "campaign-messages": "campaign-messages",
    "campaign": "campaigns",
    "campaigns": "campaigns",
    "template": "templates",
    "tags": "tags",
    "tag-group": "tag-groups",
    "flow-actions": "flow-actions",
    "flow-action": "flow-actions",
    "flow-messages": "flow-messages",
    "flow": "flows",
    "flows": "flows",
    "lists": "lists",
    "segments": "segments",
    "coupon": "coupons",
    "variants": "catalog-variants",
    "item": "catalog-items",
    "items": "catalog-items",
    "categories": "catalog-categories",
}


@dataclass(frozen=True)
class Sizes:
    campaigns: int = 40
    templates: int = 30
    lists: int = 25
    segments: int = 25
    flows: int = 12
    profiles: int = 2_000
    events: int = 10_000
    event_days: int = 60  # events span this many days before now
    history_days: int = 3 * 365  # other records were created within this many days
    tags: int = 12  # tags, spread over the tag groups; campaigns, flows, lists and segments carry 0-2 each
    tag_groups: int = 3  # the first is the account's default group
    coupons: int = 6
    codes_per_coupon: int = 20  # coupon codes of each coupon
    forms: int = 8
    catalog_items: int = 30
    variants_per_item: int = 2
    catalog_categories: int = 5  # each catalog item belongs to 1-2 of them
    member_share: float = 0.2  # share of all profiles in each list and each segment
    suppressed_share: float = 0.1  # share of profiles with a global email suppression
    list_suppressed_share: float = 0.05  # share of profiles suppressed from 1-2 lists
    timezone: str = "America/New_York"  # the account's IANA timezone: reports count its local days


@dataclass
class Record:
    id: str
    attributes: dict[str, Any]
    relationships: dict[str, list[str]] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # what rendering needs beyond attributes
    born: int | None = None  # when a record without a creation time among its `times` came to exist

    @property
    def visible_from(self) -> int:
        """When the record (in its current form) came to exist: its newest timestamp."""
        if self.born is not None:
            return self.born
        return max(self.times.values()) if self.times else 0


class Events:
    """Events numbered in time order; event i is computed from (seed, i) when asked for.

    `campaigns` maps a channel ("email", "sms") to (campaign id, campaign name, campaign-message id)
    choices for the Email and SMS metrics; `flows` lists (flow id, flow-message id) choices. A third
    of the events are attributed to a flow, other Email/SMS events to a campaign (see attribution()).
    """

    def __init__(
        self,
        seed: int,
        count: int,
        start: int,
        end: int,
        metric_ids: Sequence[str],
        profile_ids: Sequence[str],
        campaigns: Mapping[str, Sequence[tuple[str, str, str]]] | None = None,
        flows: Sequence[tuple[str, str]] | None = None,
    ):
        self.seed, self.count, self.start, self.end = seed, count, start, end
        self.metric_ids, self.profile_ids = metric_ids, profile_ids
        self.campaigns = {channel: list(choices) for channel, choices in (campaigns or {}).items()}
        self.flows = list(flows or [])
        # Density: a quiet week with no events (in spans over three weeks), one busy stretch
        # (a day in a month) holding a tenth of them, the rest even.
        span = end - start
        quiet = 7 * DAY if span > 21 * DAY else 0
        busy = max(3600, min(DAY, span // 30))
        quiet_start, busy_start = start + span // 3, start + (2 * span) // 3
        self.quiet, self.busy = (quiet_start, quiet_start + quiet), (busy_start, busy_start + busy)
        self._segments = [  # (time start, time end, share of events)
            (start, quiet_start, 0.45),
            (quiet_start, quiet_start + quiet, 0.0),
            (quiet_start + quiet, busy_start, 0.25),
            (busy_start, busy_start + busy, 0.10),
            (busy_start + busy, end, 0.20),
        ]
        shares = [segment[2] for segment in self._segments]
        self._cumulative = [sum(shares[:i]) for i in range(len(shares) + 1)]
        weights = [share for _, _, share in METRICS]
        total = sum(weights)
        self._metric_cdf = [sum(weights[: i + 1]) / total for i in range(len(weights))]
        self.metric_of = array("B", (self._metric(i) for i in range(count)))
        self.by_metric: list[array] = [array("I") for _ in metric_ids]
        for index, metric in enumerate(self.metric_of):
            self.by_metric[metric].append(index)

    def _metric(self, index: int) -> int:
        return bisect.bisect_left(self._metric_cdf, (mix(self.seed, 2, index) % 1_000_000) / 1_000_000)

    def time(self, index: int) -> int:
        """Datetime (epoch seconds) of event `index`; non-decreasing in index."""
        share = (index + 0.5) / self.count
        segment = min(bisect.bisect_right(self._cumulative, share) - 1, len(self._segments) - 1)
        begin, finish, weight = self._segments[segment]
        if weight == 0:
            return begin
        offset = (share - self._cumulative[segment]) / weight
        return min(finish - 1, begin + int(offset * (finish - begin)))

    def first_at_or_after(self, epoch: int) -> int:
        """Smallest index whose time is >= epoch (count if none)."""
        low, high = 0, self.count
        while low < high:
            middle = (low + high) // 2
            if self.time(middle) < epoch:
                low = middle + 1
            else:
                high = middle
        return low

    def _attributed(self, index: int, first: int, second: int) -> tuple | None:
        """("flow", flow id, flow-message id) or ("campaign", campaign id, name, campaign-message id) or None."""
        if second % 3 == 0 and self.flows:
            return ("flow", *self.flows[(second >> 8) % len(self.flows)])
        name = METRICS[self.metric_of[index]][0]
        if name.endswith("Email") or name.endswith("SMS"):
            choices = self.campaigns.get("sms" if name.endswith("SMS") else "email")
            if choices:
                return ("campaign", *choices[(first >> 40) % len(choices)])
        return None

    def attribution(self, index: int) -> dict[str, str | None] | None:
        """What event `index` is attributed to: {"campaign", "campaign-message", "flow", "flow-message"}
        (ids of records of the dataset, None where it does not apply), or None for an unattributed event."""
        attributed = self._attributed(index, mix(self.seed, 3, index), mix(self.seed, 4, index))
        if attributed is None:
            return None
        if attributed[0] == "flow":
            return {"campaign": None, "campaign-message": None, "flow": attributed[1], "flow-message": attributed[2]}
        return {"campaign": attributed[1], "campaign-message": attributed[3], "flow": None, "flow-message": None}

    def record(self, index: int) -> Record:
        # Two hashes per event, sliced into the event's independent choices.
        first, second = mix(self.seed, 3, index), mix(self.seed, 4, index)
        metric = self.metric_of[index]
        name = METRICS[metric][0]
        at = self.time(index)
        profile = self.profile_ids[first % len(self.profile_ids)]
        properties: dict[str, Any] = {"$event_id": f"{index}", "source": "simulator"}
        if name in ("Placed Order", "Ordered Product", "Started Checkout"):
            properties["$value"] = round(((first >> 20) % 50_000) / 100 + 5, 2)
            properties["$value_currency"] = "USD"
            properties["ItemNames"] = ["Widget", "Gadget"][: 1 + (first >> 36) % 2]
        attributed = self._attributed(index, first, second)
        attribution = None
        if attributed and attributed[0] == "flow":
            properties["$attributed_flow"] = attributed[1]
            properties["$attributed_message"] = attributed[2]
            if name.endswith("Email") or name.endswith("SMS"):
                properties["$message"] = attributed[2]
            attribution = {
                "campaign": None,
                "campaign-message": None,
                "flow": attributed[1],
                "flow-message": attributed[2],
            }
        elif attributed:
            _, campaign_id, campaign_name, message_id = attributed
            properties["Campaign Name"] = campaign_name
            properties["$message"] = campaign_id
            properties["Subject"] = f"News from {campaign_name}"
            attribution = {"campaign": campaign_id, "campaign-message": message_id, "flow": None, "flow-message": None}
        event_id = f"{(index * 0x9E3779B1 + self.seed) % (1 << 48):012x}"
        return Record(
            id=event_id,
            attributes={
                "timestamp": at,
                "event_properties": properties,
                "datetime": iso(at),
                "uuid": _uuid(first, second),
            },
            relationships={
                "profile": [profile],
                "metric": [self.metric_ids[metric]],
                "attributions": [f"{event_id}-attribution"] if attribution else [],
            },
            times={"datetime": at, "timestamp": at},
            fields={"metric_id": self.metric_ids[metric], "profile_id": profile},
            extra={"attribution": attribution} if attribution else {},
        )


def _uuid(high: int, low: int) -> str:
    text = f"{high:016x}{low:016x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:32]}"


def _stable(text: str) -> int:
    """A hash of a string that is the same in every process (str.__hash__ is salted)."""
    return zlib.crc32(text.encode())


class Dataset:
    """Everything the simulated account holds, as of `now` (epoch seconds).

    Accessors for tests that compute what the API must answer:
    - `collection(name)`: the visible records of a materialised collection (`COLLECTIONS`), e.g.
      "campaign-messages", "flow-actions", "flow-messages", "tags", "tag-groups", "coupons",
      "coupon-codes", "forms", "catalog-items", "catalog-variants", "catalog-categories".
    - `find(name, id)`, `children(name, parent_id)`: one record; the records of a child collection
      whose parent is `parent_id` (see `PARENTS` for the field holding the parent id).
    - `members("lists"|"segments", id)`: [(profile index, joined_group_at epoch)].
    - `suppression(i)`, `list_suppressions(i)`: profile i's email suppressions.
    - `events.attribution(i)`: what event i is attributed to.
    - `record.relationships["tags"]`: the tag ids of a campaign, flow, list or segment.
    - `delete(name, id)`: remove a record (and its children) at run time.
    """

    def __init__(self, seed: int = 1, now: int | None = None, sizes: Sizes = Sizes()) -> None:
        self.seed, self.sizes = seed, sizes
        self.now = int(now if now is not None else datetime.now(timezone.utc).timestamp())
        self.visible_until = self.now
        self.late_events: frozenset[int] = frozenset()
        self.version = 0  # bumped by every change at run time (delete), so cached answers are dropped
        self.records: dict[str, list[Record]] = {name: [] for name in COLLECTIONS}
        add = self._add
        self.metrics = add("metrics", [self._metric(i, n, g) for i, (n, g, _) in enumerate(METRICS)])
        self.templates = add("templates", [self._template(i) for i in range(sizes.templates)])
        self.tag_ids = [make_id(24, index, seed) for index in range(sizes.tags)]
        self.tag_groups = add("tag-groups", [self._tag_group(i) for i in range(sizes.tag_groups)])
        self.tags = add("tags", [self._tag(i) for i in range(sizes.tags)])
        self.flows = add("flows", [self._flow(i) for i in range(sizes.flows)])
        self.flow_actions, self.flow_messages = add("flow-actions", []), add("flow-messages", [])
        for index, flow in enumerate(self.flows):
            self._flow_children(index, flow)
        self.lists = add("lists", [self._list(i) for i in range(sizes.lists)])
        self.segments = add("segments", [self._segment(i) for i in range(sizes.segments)])
        self.campaigns = add("campaigns", [self._campaign(i) for i in range(sizes.campaigns)])
        self.campaign_messages = add("campaign-messages", [])
        for index, campaign in enumerate(self.campaigns):
            self.campaign_messages.extend(self._campaign_messages(index, campaign))
        tags = {tag.id: tag for tag in self.tags}
        for name in ("campaigns", "flows", "lists", "segments"):  # tags list what carries them
            for record in self.records[name]:
                for tag_id in record.relationships.get("tags", []):
                    tags[tag_id].relationships[name].append(record.id)
        self.profiles = Profiles(
            seed,
            sizes.profiles,
            self.now - sizes.history_days * DAY,
            self.now,
            [record.id for record in self.lists],
            sizes.suppressed_share,
            sizes.list_suppressed_share,
        )
        self.coupons = add("coupons", [self._coupon(i) for i in range(sizes.coupons)])
        self.coupon_codes = add("coupon-codes", [])
        for index, coupon in enumerate(self.coupons):
            self.coupon_codes.extend(self._coupon_codes(index, coupon))
        self.forms = add("forms", [self._form(i) for i in range(sizes.forms)])
        self.catalog_categories = add(
            "catalog-categories", [self._category(i) for i in range(sizes.catalog_categories)]
        )
        self.catalog_items = add("catalog-items", [self._item(i) for i in range(sizes.catalog_items)])
        self.catalog_variants = add("catalog-variants", [])
        for index, item in enumerate(self.catalog_items):
            self.catalog_variants.extend(self._variants(index, item))
        by_channel: dict[str, list[tuple[str, str, str]]] = {}
        for campaign in self.campaigns:
            messages = campaign.relationships["campaign-messages"]
            channel = campaign.fields["messages.channel"]
            by_channel.setdefault(channel, []).append((campaign.id, campaign.attributes["name"], messages[0]))
        flow_messages = [(message.fields["flow.id"], message.id) for message in self.flow_messages]
        self.events = Events(
            seed,
            sizes.events,
            self.now - sizes.event_days * DAY,
            self.now,
            [metric.id for metric in self.metrics],
            self.profiles.ids,
            by_channel,
            flow_messages,
        )
        self._index = {name: {record.id: record for record in records} for name, records in self.records.items()}
        self._children: dict[str, dict[str, list[Record]]] = {}
        for child, (_, key) in PARENTS.items():
            groups: dict[str, list[Record]] = {}
            for record in self.records[child]:
                groups.setdefault(record.fields[key], []).append(record)
            self._children[child] = groups
        self._members: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def _add(self, name: str, records: list[Record]) -> list[Record]:
        self.records[name] = records
        return records

    # -- small collections -------------------------------------------------------------
    def _times(self, kind: int, index: int) -> tuple[int, int]:
        """(created, updated) within the history, updated no earlier than created."""
        history = self.sizes.history_days * DAY
        created = self.now - 1 - mix(self.seed, kind, index, 1) % history
        updated = created + mix(self.seed, kind, index, 2) % max(1, self.now - created)
        return created, updated

    def _within(self, kind: int, index: int, start: int, end: int) -> tuple[int, int]:
        """(created, updated) with start <= created <= updated <= end: a child inside its parent's life."""
        created = start + mix(self.seed, kind, index, 1) % (end - start + 1)
        updated = created + mix(self.seed, kind, index, 2) % (end - created + 1)
        return created, updated

    def _tags_for(self, kind: int, index: int) -> list[str]:
        """0 to 2 tag ids, drawn from (kind, index)."""
        if not self.tag_ids:
            return []
        draw = mix(self.seed, kind, index, 9)
        picks = [((draw >> 8) + step * 5) % len(self.tag_ids) for step in range(draw % 3)]
        return [self.tag_ids[pick] for pick in dict.fromkeys(picks)]

    def _template_for(self, draw: int) -> list[str]:
        return [self.templates[draw % len(self.templates)].id] if self.templates else []

    def _metric(self, index: int, name: str, integration: str) -> Record:
        created, updated = self._times(1, index)
        record_id = make_id(1, index, self.seed)
        return Record(
            record_id,
            {
                "name": name,
                "created": iso(created),
                "updated": iso(updated),
                "integration": {
                    "object": "integration",
                    "id": make_id(22, index, self.seed),
                    "name": integration,
                    "category": "eCommerce",
                },
            },
            times={"created": created, "updated": updated},
            fields={"integration.name": integration, "integration.category": "eCommerce"},
        )

    def _tag_group(self, index: int) -> Record:
        group_id = make_id(30, index, self.seed)
        name = "Default" if index == 0 else f"Tag group {index}"
        exclusive, default = index % 2 == 1, index == 0
        count = max(1, self.sizes.tag_groups)
        return Record(
            group_id,
            {"name": name, "exclusive": exclusive, "default": default},
            relationships={"tags": [tag for position, tag in enumerate(self.tag_ids) if position % count == index]},
            fields={"id": group_id, "name": name, "exclusive": exclusive, "default": default},
        )

    def _tag(self, index: int) -> Record:
        name = f"{TAG_WORDS[index % len(TAG_WORDS)]} {index}"
        groups = self.records["tag-groups"]
        group = [groups[index % len(groups)].id] if groups else []
        return Record(
            self.tag_ids[index],
            {"name": name},
            relationships={"tag-group": group, "campaigns": [], "flows": [], "lists": [], "segments": []},
            fields={"id": self.tag_ids[index], "name": name, "tag-group.id": group[0] if group else None},
        )

    def _flow(self, index: int) -> Record:
        created, updated = self._times(2, index)
        status = ["live", "draft", "manual"][index % 3]
        archived = index % 5 == 4
        flow_id = make_id(21, index, self.seed)
        return Record(
            flow_id,
            {
                "name": f"Flow {index}: {['Welcome series', 'Abandoned cart', 'Win-back', 'Post-purchase'][index % 4]}",
                "status": status,
                "archived": archived,
                "created": iso(created),
                "updated": iso(updated),
                "trigger_type": ["Added to List", "Metric", "Date Based", "Price Drop"][index % 4],
            },
            relationships={
                "flow-actions": [make_id(23, index * 3 + k, self.seed) for k in range(1 + index % 3)],
                "tags": self._tags_for(2, index),
            },
            times={"created": created, "updated": updated},
            fields={"id": flow_id, "status": status, "archived": archived},
        )

    def _flow_children(self, index: int, flow: Record) -> None:
        """The flow's actions (a send first, then a time delay, then another send) and one message per send."""
        action_ids = flow.relationships["flow-actions"]
        status = flow.fields["status"]
        start, end = flow.times["created"], flow.times["updated"]
        for k, action_id in enumerate(action_ids):
            number = index * 3 + k
            created, updated = self._within(23, number, start, end)
            kind = [
                "SEND_EMAIL" if index % 2 == 0 else "SEND_SMS",
                "TIME_DELAY",
                "SEND_SMS" if index % 2 == 0 else "SEND_EMAIL",
            ][k]
            following = action_ids[k + 1] if k + 1 < len(action_ids) else None
            messages: list[str] = []
            message = None
            if kind != "TIME_DELAY":
                channel = "email" if kind == "SEND_EMAIL" else "sms"
                message = self._flow_message(number, action_id, flow, channel, created, updated)
                messages.append(message.id)
            action = Record(
                action_id,
                {
                    "created": iso(created),
                    "updated": iso(updated),
                    "definition": _action_definition(action_id, kind, status, following, message, number),
                },
                relationships={"flow": [flow.id], "flow-messages": messages},
                times={"created": created, "updated": updated},
                fields={"id": action_id, "flow.id": flow.id, "action_type": kind, "status": status},
                extra={"retired": _retired_action(kind, status, created, updated, number)},
            )
            self.flow_actions.append(action)
            if message is not None:
                self.flow_messages.append(message)

    def _flow_message(self, number: int, action_id: str, flow: Record, channel: str, start: int, end: int) -> Record:
        message_id = make_id(26, number, self.seed)
        created, updated = self._within(26, number, start, end)
        name = f"{flow.attributes['name'].split(':')[0]} {channel} message {number % 3 + 1}"
        template = self._template_for(mix(self.seed, 26, number, 3))
        if channel == "email":
            subject = f"{name}: something for you"
            definition: dict[str, Any] = {
                "from_email": "flows@example.com",
                "from_label": "Example",
                "reply_to_email": None,
                "cc_email": None,
                "bcc_email": None,
                "subject_line": subject,
                "preview_text": "Open me",
                "template_id": template[0] if template else None,
                "smart_sending_enabled": True,
                "transactional": False,
                "add_tracking_params": False,
                "custom_tracking_params": None,
                "additional_filters": None,
                "name": name,
                "id": message_id,
            }
            content: dict[str, Any] = {
                "subject": subject,
                "preview_text": "Open me",
                "from_email": "flows@example.com",
                "from_label": "Example",
            }
        else:
            body = f"{name}: reply STOP to opt out"
            definition = {
                "body": body,
                "image_id": None,
                "dynamic_image": None,
                "shorten_links": True,
                "include_contact_card": False,
                "add_org_prefix": True,
                "add_info_link": True,
                "add_opt_out_language": True,
                "smart_sending_enabled": True,
                "sms_quiet_hours_enabled": True,
                "transactional": False,
                "add_tracking_params": False,
                "custom_tracking_params": None,
                "template_id": template[0] if template else None,
                "additional_filters": None,
                "name": name,
                "id": message_id,
            }
            content = {"body": body}
        return Record(
            message_id,
            {"channel": channel, "created": iso(created), "updated": iso(updated), "definition": definition},
            relationships={"flow-action": [action_id], "template": template},
            times={"created": created, "updated": updated},
            fields={"id": message_id, "name": name, "flow-action.id": action_id, "flow.id": flow.id},
            extra={
                "retired": {
                    "name": name,
                    "channel": channel,
                    "content": content,
                    "created": iso(created),
                    "updated": iso(updated),
                }
            },
        )

    def _template(self, index: int) -> Record:
        created, updated = self._times(3, index)
        name = f"Template {index}"
        return Record(
            make_id(3, index, self.seed),
            {
                "name": name,
                "editor_type": ["CODE", "SYSTEM_DRAGGABLE", "USER_DRAGGABLE"][index % 3],
                "html": f"<html><body><h1>{name}</h1></body></html>",
                "text": f"{name}",
                "amp": None,
                "created": iso(created),
                "updated": iso(updated),
            },
            times={"created": created, "updated": updated},
            fields={"id": make_id(3, index, self.seed), "name": name},
        )

    def _list(self, index: int) -> Record:
        created, updated = self._times(4, index)
        name = f"List {index}"
        return Record(
            make_id(4, index, self.seed),
            {
                "name": name,
                "created": iso(created),
                "updated": iso(updated),
                "opt_in_process": ["single_opt_in", "double_opt_in"][index % 2],
            },
            relationships={"tags": self._tags_for(4, index)},
            times={"created": created, "updated": updated},
            fields={"id": make_id(4, index, self.seed), "name": name},
        )

    def _segment(self, index: int) -> Record:
        created, updated = self._times(5, index)
        name = f"Segment {index}"
        return Record(
            make_id(5, index, self.seed),
            {
                "name": name,
                "definition": {"condition_groups": []},
                "created": iso(created),
                "updated": iso(updated),
                "is_active": index % 7 != 0,
                "is_processing": False,
                "is_starred": index % 4 == 0,
            },
            relationships={"tags": self._tags_for(5, index)},
            times={"created": created, "updated": updated},
            fields={
                "id": make_id(5, index, self.seed),
                "name": name,
                "is_active": index % 7 != 0,
                "is_starred": index % 4 == 0,
            },
        )

    def _campaign(self, index: int) -> Record:
        created, updated = self._times(6, index)
        channel = CHANNELS[index % 3]
        archived = index % 4 == 3
        status = "Sent" if updated < self.now - DAY else "Draft"
        scheduled = created + (updated - created) // 2
        messages = [make_id(25, index, self.seed)] + ([make_id(27, index, self.seed)] if index % 4 == 0 else [])
        return Record(
            make_id(20, index, self.seed),
            {
                "name": f"Campaign {index}",
                "status": status,
                "archived": archived,
                "audiences": {"included": [make_id(4, index % 5, self.seed)], "excluded": []},
                "created_at": iso(created),
                "scheduled_at": iso(scheduled),
                "updated_at": iso(updated),
                "send_time": iso(scheduled),
            },
            relationships={"campaign-messages": messages, "tags": self._tags_for(6, index)},
            times={"created_at": created, "updated_at": updated, "scheduled_at": scheduled},
            fields={
                "id": make_id(20, index, self.seed),
                "messages.channel": channel,
                "archived": archived,
                "status": status,
                "name": f"Campaign {index}",
            },
        )

    def _campaign_messages(self, index: int, campaign: Record) -> list[Record]:
        """One message per campaign, two (an A/B test) for every fourth campaign."""
        channel = campaign.fields["messages.channel"]
        start, end = campaign.times["created_at"], campaign.times["updated_at"]
        send_times = [{"datetime": campaign.attributes["send_time"], "is_local": False}]
        records = []
        for k, message_id in enumerate(campaign.relationships["campaign-messages"]):
            number = index * 2 + k
            created, updated = self._within(25, number, start, end)
            label = f"{campaign.attributes['name']} message {k + 1}"
            if channel == "email":
                subject = f"{campaign.attributes['name']} news{' (B)' if k else ''}"
                definition: dict[str, Any] = {
                    "channel": "email",
                    "label": label,
                    "content": {
                        "subject": subject,
                        "preview_text": "This week at Example",
                        "from_email": "news@example.com",
                        "from_label": "Example",
                        "reply_to_email": None,
                        "cc_email": None,
                        "bcc_email": None,
                    },
                }
                content: dict[str, Any] = {
                    "subject": subject,
                    "preview_text": "This week at Example",
                    "from_email": "news@example.com",
                    "from_label": "Example",
                }
            elif channel == "sms":
                body = f"{campaign.attributes['name']}: 10% off today. Reply STOP to opt out"
                definition = {
                    "channel": "sms",
                    "content": {"body": body, "media_url": None},
                    "render_options": {
                        "shorten_links": True,
                        "add_org_prefix": True,
                        "add_info_link": True,
                        "add_opt_out_language": True,
                    },
                }
                content = {"body": body}
            else:
                definition = {
                    "channel": "mobile_push",
                    "notification_type": "standard",
                    "content": {
                        "title": campaign.attributes["name"],
                        "body": "Something new is waiting in the app",
                        "dynamic_image": None,
                        "action_buttons": None,
                    },
                    "kv_pairs": None,
                    "options": {"on_open": {"type": "open_app"}, "badge": {"display": False}, "play_sound": True},
                }
                content = {"title": campaign.attributes["name"], "body": "Something new is waiting in the app"}
            retired = {
                "label": label,
                "channel": channel,
                "content": content,
                "send_times": send_times,
                "created_at": iso(created),
                "updated_at": iso(updated),
            }
            if channel == "sms":
                retired["render_options"] = definition["render_options"]
            template = self._template_for(mix(self.seed, 25, number, 3)) if channel != "mobile_push" else []
            records.append(
                Record(
                    message_id,
                    {
                        "definition": definition,
                        "send_times": send_times,
                        "created_at": iso(created),
                        "updated_at": iso(updated),
                    },
                    relationships={"campaign": [campaign.id], "template": template},
                    times={"created_at": created, "updated_at": updated},
                    fields={"id": message_id, "campaign.id": campaign.id, "channel": channel},
                    extra={"retired": retired},
                )
            )
        return records

    def _coupon(self, index: int) -> Record:
        coupon_id = f"SAVE{(index + 1) * 5}"
        return Record(
            coupon_id,
            {"external_id": coupon_id, "description": f"{(index + 1) * 5}% off the next order"},
            fields={"id": coupon_id},
        )

    def _coupon_codes(self, index: int, coupon: Record) -> list[Record]:
        """Codes made within the history; a third assigned to a profile; expiring from a month ago to a year on."""
        records = []
        for k in range(self.sizes.codes_per_coupon):
            number = index * self.sizes.codes_per_coupon + k
            code_id = make_id(28, number, self.seed, width=8)
            created, _ = self._times(28, number)
            expires = max(created + DAY, self.now - 30 * DAY + mix(self.seed, 28, number, 3) % (395 * DAY))
            assigned = k % 3 == 0 and self.profiles.count > 0
            profile = [self.profiles.ids[mix(self.seed, 28, number, 4) % self.profiles.count]] if assigned else []
            status = "ASSIGNED_TO_PROFILE" if assigned else "UNASSIGNED"
            records.append(
                Record(
                    code_id,
                    {"unique_code": f"{coupon.id}-{code_id.upper()}", "expires_at": iso(expires), "status": status},
                    relationships={"coupon": [coupon.id], "profile": profile},
                    times={"expires_at": expires},
                    fields={
                        "id": code_id,
                        "coupon.id": coupon.id,
                        "profile.id": profile[0] if profile else None,
                        "status": status,
                    },
                    born=created,
                )
            )
        return records

    def _form(self, index: int) -> Record:
        created, updated = self._times(29, index)
        form_id = make_id(29, index, self.seed)
        name = f"Form {index}: {['Popup', 'Flyout', 'Embed', 'Full page'][index % 4]}"
        status, ab_test = ("live" if index % 3 else "draft"), index % 4 == 1
        return Record(
            form_id,
            {
                "name": name,
                "status": status,
                "ab_test": ab_test,
                "created_at": iso(created),
                "updated_at": iso(updated),
            },
            relationships={"form-versions": []},
            times={"created_at": created, "updated_at": updated},
            fields={"id": form_id, "name": name, "status": status, "ab_test": ab_test},
        )

    def _category(self, index: int) -> Record:
        created, updated = self._times(31, index)
        external = f"CAT-{index:03d}"
        category_id = f"$custom:::$default:::{external}"
        items: list[str] = []  # filled in by _item
        name = ["Widgets", "Gadgets", "Gizmos", "Doohickeys", "Sprockets", "Thingamajigs"][index % 6] + f" {index}"
        return Record(
            category_id,
            {"external_id": external, "name": name, "updated": iso(updated)},
            relationships={"items": items},
            times={"created": created, "updated": updated},
            fields={"id": category_id, "ids": category_id, "name": name, "item.id": items},
        )

    def _item(self, index: int) -> Record:
        created, updated = self._times(32, index)
        external = f"ITEM-{index:04d}"
        item_id = f"$custom:::$default:::{external}"
        categories: list[str] = []
        if self.catalog_categories:
            draw = mix(self.seed, 32, index, 3)
            picks = dict.fromkeys([draw % len(self.catalog_categories), (draw >> 8) % len(self.catalog_categories)])
            for pick in list(picks)[: 1 + (draw >> 16) % 2]:
                category = self.catalog_categories[pick]
                categories.append(category.id)
                category.relationships["items"].append(item_id)
        title = f"{['Blue', 'Red', 'Green', 'Black'][index % 4]} widget {index}"
        price = round(5 + (mix(self.seed, 32, index, 4) % 20_000) / 100, 2)
        published = index % 6 != 5
        variants = [f"$custom:::$default:::SKU-{index:04d}-{v}" for v in range(self.sizes.variants_per_item)]
        return Record(
            item_id,
            {
                "external_id": external,
                "title": title,
                "description": f"The {title.lower()}, built to last.",
                "price": price,
                "url": f"https://shop.example.com/items/{external.lower()}",
                "image_full_url": f"https://shop.example.com/images/{external.lower()}.png",
                "image_thumbnail_url": f"https://shop.example.com/images/{external.lower()}-thumb.png",
                "images": [f"https://shop.example.com/images/{external.lower()}.png"],
                "custom_metadata": {"color": title.split()[0].lower()},
                "published": published,
                "created": iso(created),
                "updated": iso(updated),
            },
            relationships={"variants": variants, "categories": categories},
            times={"created": created, "updated": updated},
            fields={"id": item_id, "ids": item_id, "title": title, "published": published, "category.id": categories},
        )

    def _variants(self, index: int, item: Record) -> list[Record]:
        records = []
        for v, variant_id in enumerate(item.relationships["variants"]):
            number = index * max(1, self.sizes.variants_per_item) + v
            created, updated = self._within(33, number, item.times["created"], item.times["updated"])
            sku = variant_id.rsplit(":", 1)[1]
            title = f"{item.attributes['title']} ({['S', 'M', 'L', 'XL'][v % 4]})"
            attributes = {
                key: item.attributes[key]
                for key in ("description", "price", "url", "image_full_url", "image_thumbnail_url", "images")
            }
            attributes.update(
                {
                    "external_id": sku,
                    "title": title,
                    "sku": sku,
                    "inventory_policy": v % 3,
                    "inventory_quantity": mix(self.seed, 33, number, 3) % 500,
                    "custom_metadata": {},
                    "published": item.attributes["published"],
                    "created": iso(created),
                    "updated": iso(updated),
                }
            )
            records.append(
                Record(
                    variant_id,
                    attributes,
                    relationships={"item": [item.id]},
                    times={"created": created, "updated": updated},
                    fields={
                        "id": variant_id,
                        "ids": variant_id,
                        "item.id": item.id,
                        "sku": sku,
                        "title": title,
                        "published": item.attributes["published"],
                    },
                )
            )
        return records

    # -- visibility ----------------------------------------------------------------------
    def hold_back(self, seconds: int) -> None:
        """Hide every record whose newest timestamp falls in the last `seconds` (until reveal()).

        A profile's facts that have times of their own show up at those times instead: a
        list or segment member at joined_group_at, an email suppression at its timestamp
        (to the queries that filter on suppressions, a profile is there once created).
        """
        self.visible_until = self.now - seconds

    def delay_events(self, every: int, within_seconds: int) -> None:
        """Make every `every`-th event of the last `within_seconds` arrive late: hidden until reveal()."""
        first = self.events.first_at_or_after(self.now - within_seconds)
        self.late_events = frozenset(range(first, self.events.count, every))

    def reveal(self) -> None:
        self.visible_until = self.now
        self.late_events = frozenset()

    # -- accessors ----------------------------------------------------------------------------
    def collection(self, name: str) -> list[Record]:
        """The visible records of a materialised collection (one of COLLECTIONS), in generation order."""
        return [record for record in self.records[name] if record.visible_from <= self.visible_until]

    def find(self, name: str, record_id: str, visible: bool = True) -> Record | None:
        """The record of collection `name` with id `record_id`; None if it does not exist (or is not yet
        visible, unless visible=False)."""
        record = self._index.get(name, {}).get(record_id)
        if record is None or (visible and record.visible_from > self.visible_until):
            return None
        return record

    def children(self, name: str, parent_id: str, visible: bool = True) -> list[Record]:
        """The records of child collection `name` (a key of PARENTS) whose parent is `parent_id`, e.g.
        children("flow-actions", flow_id) are the flow's actions (record.fields["flow.id"] == flow_id)."""
        records = self._children[name].get(parent_id, [])
        return [r for r in records if r.visible_from <= self.visible_until] if visible else list(records)

    def members(self, kind: str, parent_id: str, visible: bool = True) -> list[tuple[int, int]]:
        """Members of list or segment `parent_id` (kind "lists" or "segments"): [(profile index,
        joined_group_at epoch)] ordered by profile index. A member joined after both the profile and the
        list were created. With visible=True (the default) only what the API serves now: members who
        joined by visible_until. [] for an unknown (or deleted) list or segment."""
        parent = self._index[kind].get(parent_id)
        if parent is None:
            return []
        key = (kind, parent_id)
        if key not in self._members:
            profiles = self.profiles
            salt = _stable(f"{kind}/{parent_id}")
            chosen = random.Random(mix(self.seed, 40, salt)).sample(
                range(profiles.count), min(profiles.count, round(profiles.count * self.sizes.member_share))
            )
            since = parent.times["created"]
            joined = []
            for index in sorted(chosen):
                start = max(since, profiles.created[index])
                joined.append((index, start + mix(self.seed, 41, salt, index) % max(1, self.now - start)))
            self._members[key] = joined
        if not visible:
            return list(self._members[key])
        return [(index, at) for index, at in self._members[key] if at <= self.visible_until]

    def suppression(self, index: int) -> tuple[str, int] | None:
        """Profile `index`'s global email marketing suppression: (reason, timestamp epoch), or None (also
        while it is held back)."""
        held = self.profiles.suppression.get(index)
        return held if held and held[1] <= self.visible_until else None

    def list_suppressions(self, index: int) -> list[tuple[str, str, int]]:
        """Profile `index`'s list suppressions not held back: [(list id, reason, timestamp epoch)]."""
        return [entry for entry in self.profiles.list_suppressions.get(index, ()) if entry[2] <= self.visible_until]

    # -- changes at run time ---------------------------------------------------------------------
    def delete(self, name: str, record_id: str) -> list[tuple[str, str]]:
        """Delete a record of collection `name` and, like Klaviyo, its children (a campaign's messages, a
        flow's actions and their messages, a coupon's codes, an item's variants, a tag group's tags); drop
        the deleted ids from the others' relationships. Returns the deleted (collection, id) pairs;
        raises KeyError when there is no such record."""
        if name not in self.records:
            raise KeyError(f"no collection {name!r} (one of {', '.join(COLLECTIONS)})")
        if record_id not in self._index[name]:
            raise KeyError(f"no {name} record {record_id!r}")
        deleted = [(name, record_id)]
        for child, (parent, _) in PARENTS.items():
            if parent == name:
                for record in list(self._children[child].get(record_id, [])):
                    deleted += self.delete(child, record.id)
        record = self._index[name].pop(record_id)
        self.records[name][:] = [r for r in self.records[name] if r.id != record_id]  # in place: aliases stay
        if name in PARENTS:
            siblings = self._children[name].get(record.fields[PARENTS[name][1]], [])
            siblings[:] = [r for r in siblings if r.id != record_id]
        for child, (parent, _) in PARENTS.items():
            if parent == name:
                self._children[child].pop(record_id, None)
        for records in self.records.values():
            for other in records:
                for relationship, ids in other.relationships.items():
                    if RELATED_COLLECTION.get(relationship) == name and record_id in ids:
                        ids.remove(record_id)
        self._members = {key: value for key, value in self._members.items() if key != (name, record_id)}
        self.version += 1
        return deleted


def _action_definition(
    action_id: str, kind: str, status: str, following: str | None, message: Record | None, number: int
) -> dict[str, Any]:
    """A flow action as the 2026-07-15 revision describes it (`definition`)."""
    if kind == "TIME_DELAY":
        return {
            "id": action_id,
            "temporary_id": None,
            "type": "time-delay",
            "links": {"next": following},
            "data": {
                "unit": "days",
                "value": 1 + number % 3,
                "secondary_value": None,
                "timezone": "profile",
                "delay_until_time": None,
                "delay_until_weekdays": None,
            },
        }
    return {
        "id": action_id,
        "temporary_id": None,
        "type": "send-email" if kind == "SEND_EMAIL" else "send-sms",
        "links": {"next": following},
        "data": {"message": message.attributes["definition"] if message else None, "status": status},
    }


def _retired_action(kind: str, status: str, created: int, updated: int, number: int) -> dict[str, Any]:
    """A flow action as the 2023-10-15 revision describes it."""
    attributes: dict[str, Any] = {
        "action_type": kind,
        "status": status,
        "created": iso(created),
        "updated": iso(updated),
        "settings": {"delay_seconds": (1 + number % 3) * DAY} if kind == "TIME_DELAY" else {},
    }
    if kind == "SEND_EMAIL":
        attributes["tracking_options"] = {
            "add_utm": False,
            "utm_params": [],
            "is_tracking_opens": True,
            "is_tracking_clicks": True,
        }
        attributes["send_options"] = {"use_smart_sending": True, "is_transactional": False}
    elif kind == "SEND_SMS":
        attributes["tracking_options"] = {"add_utm": False, "utm_params": []}
        attributes["send_options"] = {"use_smart_sending": True, "is_transactional": False}
        attributes["render_options"] = {
            "shorten_links": True,
            "add_org_prefix": True,
            "add_info_link": True,
            "add_opt_out_language": True,
        }
    return attributes


class Profiles:
    """Profiles keep only their timestamps (and suppressions) in memory; the rest is rendered from (seed, index).

    `suppression[i]` = (reason, timestamp) for the globally suppressed share of profiles;
    `list_suppressions[i]` = [(list id, reason, timestamp)] for the share suppressed from 1-2 lists.
    Suppression timestamps fall between the profile's `created` and `updated`.
    """

    def __init__(
        self,
        seed: int,
        count: int,
        start: int,
        end: int,
        list_ids: Sequence[str] = (),
        suppressed_share: float = 0.0,
        list_suppressed_share: float = 0.0,
    ) -> None:
        self.seed, self.count = seed, count
        self.ids = [make_id(7, index, seed, width=8) for index in range(count)]
        span = max(1, end - start)
        self.created = array("q", (start + mix(seed, 7, i, 1) % span for i in range(count)))
        self.updated = array("q", (c + mix(seed, 7, i, 2) % max(1, end - c) for i, c in enumerate(self.created)))
        self.order = {
            name: sorted(range(count), key=values.__getitem__)
            for name, values in (("created", self.created), ("updated", self.updated))
        }
        self._index_of: dict[str, int] | None = None
        self.suppression: dict[int, tuple[str, int]] = {}
        for index in sorted(random.Random(mix(seed, 44)).sample(range(count), round(count * suppressed_share))):
            reason = SUPPRESSION_REASONS[mix(seed, 45, index) % len(SUPPRESSION_REASONS)]
            self.suppression[index] = (reason, self._moment(46, index, 0))
        self.list_suppressions: dict[int, list[tuple[str, str, int]]] = {}
        if list_ids:
            chosen = random.Random(mix(seed, 47)).sample(range(count), round(count * list_suppressed_share))
            for index in sorted(chosen):
                draw = mix(seed, 48, index)
                picks = dict.fromkeys(((draw >> 8) + step * 7) % len(list_ids) for step in range(1 + draw % 2))
                self.list_suppressions[index] = [
                    (
                        list_ids[pick],
                        LIST_SUPPRESSION_REASONS[(draw >> 4 + step) % 2],
                        self._moment(49, index, step),
                    )
                    for step, pick in enumerate(picks)
                ]

    def _moment(self, kind: int, index: int, step: int) -> int:
        created, updated = self.created[index], self.updated[index]
        return created + mix(self.seed, kind, index, step) % (updated - created + 1)

    def index_of(self, profile_id: str) -> int | None:
        if self._index_of is None:
            self._index_of = {profile_id: index for index, profile_id in enumerate(self.ids)}
        return self._index_of.get(profile_id)

    def record(self, index: int) -> Record:
        seed = self.seed
        first, last = FIRST_NAMES[mix(seed, 12, index) % 10], LAST_NAMES[mix(seed, 13, index) % 10]
        city, region, country, zip_code = CITIES[mix(seed, 14, index) % len(CITIES)]
        created, updated = self.created[index], self.updated[index]
        email = f"{first.lower()}.{last.lower()}.{index}@example.com"
        phone = f"+1555{mix(seed, 15, index) % 10_000_000:07d}"
        suppression = self.suppression.get(index)
        return Record(
            self.ids[index],
            {
                "email": email,
                "phone_number": phone,
                "external_id": f"ext-{index}",
                "first_name": first,
                "last_name": last,
                "organization": "Example Corp",
                "locale": "en-US",
                "title": "Customer",
                "image": f"https://example.com/avatars/{index}.png",
                "created": iso(created),
                "updated": iso(updated),
                "last_event_date": iso(updated),
                "location": {
                    "address1": f"{index} Main St",
                    "address2": "",
                    "city": city,
                    "country": country,
                    "latitude": "42.3601",
                    "longitude": "-71.0589",
                    "region": region,
                    "zip": zip_code,
                    "timezone": "America/New_York",
                    "ip": "127.0.0.1",
                },
                "properties": {"plan": ["free", "pro"][index % 2], "lifetime_orders": mix(seed, 16, index) % 20},
            },
            relationships={},
            times={"created": created, "updated": updated},
            fields={"id": self.ids[index], "email": email, "phone_number": phone, "external_id": f"ext-{index}"},
            extra={
                "suppression": [{"reason": suppression[0], "timestamp": iso(suppression[1])}] if suppression else [],
                "list_suppressions": [
                    {"list_id": list_id, "reason": reason, "timestamp": iso(at)}
                    for list_id, reason, at in self.list_suppressions.get(index, ())
                ],
            },
        )


def parse_now(text: str | None) -> int | None:
    """`YYYY-MM-DDTHH:MM:SSZ` as epoch seconds; None keeps the real time."""
    if not text:
        return None
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
