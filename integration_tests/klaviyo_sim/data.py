"""A Klaviyo account's data, generated deterministically from a seed and a pinned `now`.

Small collections (campaigns, templates, lists, segments, flows, metrics) are
materialised as records. Profiles keep their timestamps in arrays and render
the rest on demand; events are never stored at all: event i is a pure function
of (seed, i) and events are numbered in time order, so a datetime range is a
range of indexes found by binary search. A million events cost a few MB.

Every record carries `times` (epoch seconds per time field) for filtering and
`fields` (the values its endpoint can filter on by equality).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
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


@dataclass
class Record:
    id: str
    attributes: dict[str, Any]
    relationships: dict[str, list[str]] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def visible_from(self) -> int:
        """When the record (in its current form) came to exist: its newest timestamp."""
        return max(self.times.values()) if self.times else 0


class Events:
    """Events numbered in time order; event i is computed from (seed, i) when asked for."""

    def __init__(
        self, seed: int, count: int, start: int, end: int, metric_ids: Sequence[str], profile_ids: Sequence[str]
    ):
        self.seed, self.count, self.start, self.end = seed, count, start, end
        self.metric_ids, self.profile_ids = metric_ids, profile_ids
        self.campaign_ids = [make_id(20, index, seed) for index in range(8)]
        self.flow_ids = [make_id(21, index, seed) for index in range(4)]
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
        if name.endswith("Email") or name.endswith("SMS"):
            campaign = (first >> 40) % 8
            properties["Campaign Name"] = f"Campaign {campaign}"
            properties["$message"] = self.campaign_ids[campaign]
            properties["Subject"] = f"News #{campaign}"
        if second % 3 == 0:
            properties["$attributed_flow"] = self.flow_ids[(second >> 8) % len(self.flow_ids)]
        return Record(
            id=f"{(index * 0x9E3779B1 + self.seed) % (1 << 48):012x}",
            attributes={
                "timestamp": at,
                "event_properties": properties,
                "datetime": iso(at),
                "uuid": _uuid(first, second),
            },
            relationships={"profile": [profile], "metric": [self.metric_ids[metric]]},
            times={"datetime": at, "timestamp": at},
            fields={"metric_id": self.metric_ids[metric], "profile_id": profile},
        )


def _uuid(high: int, low: int) -> str:
    text = f"{high:016x}{low:016x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:32]}"


class Dataset:
    """Everything the simulated account holds, as of `now` (epoch seconds)."""

    def __init__(self, seed: int = 1, now: int | None = None, sizes: Sizes = Sizes()) -> None:
        self.seed, self.sizes = seed, sizes
        self.now = int(now if now is not None else datetime.now(timezone.utc).timestamp())
        self.visible_until = self.now
        self.late_events: frozenset[int] = frozenset()
        self.metrics = [self._metric(i, name, integration) for i, (name, integration, _) in enumerate(METRICS)]
        self.flows = [self._flow(i) for i in range(sizes.flows)]
        self.templates = [self._template(i) for i in range(sizes.templates)]
        self.lists = [self._list(i) for i in range(sizes.lists)]
        self.segments = [self._segment(i) for i in range(sizes.segments)]
        self.campaigns = [self._campaign(i) for i in range(sizes.campaigns)]
        self.profiles = Profiles(seed, sizes.profiles, self.now - sizes.history_days * DAY, self.now)
        self.events = Events(
            seed,
            sizes.events,
            self.now - sizes.event_days * DAY,
            self.now,
            [metric.id for metric in self.metrics],
            self.profiles.ids,
        )

    # -- small collections -------------------------------------------------------------
    def _times(self, kind: int, index: int) -> tuple[int, int]:
        """(created, updated) within the history, updated no earlier than created."""
        history = self.sizes.history_days * DAY
        created = self.now - 1 - mix(self.seed, kind, index, 1) % history
        updated = created + mix(self.seed, kind, index, 2) % max(1, self.now - created)
        return created, updated

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

    def _flow(self, index: int) -> Record:
        created, updated = self._times(2, index)
        status = ["live", "draft", "manual"][index % 3]
        archived = index % 5 == 4
        return Record(
            make_id(21, index, self.seed),
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
                "tags": [],
            },
            times={"created": created, "updated": updated},
            fields={"id": make_id(21, index, self.seed), "status": status, "archived": archived},
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
            relationships={"tags": [make_id(24, index % 5, self.seed)] if index % 2 else []},
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
            relationships={"tags": []},
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
        channel = "email" if index % 3 else "sms"
        archived = index % 4 == 3
        status = "Sent" if updated < self.now - DAY else "Draft"
        scheduled = created + (updated - created) // 2
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
            relationships={"campaign-messages": [make_id(25, index, self.seed)], "tags": []},
            times={"created_at": created, "updated_at": updated, "scheduled_at": scheduled},
            fields={
                "id": make_id(20, index, self.seed),
                "messages.channel": channel,
                "archived": archived,
                "status": status,
                "name": f"Campaign {index}",
            },
        )

    # -- visibility ----------------------------------------------------------------------
    def hold_back(self, seconds: int) -> None:
        """Hide every record whose newest timestamp falls in the last `seconds` (until reveal())."""
        self.visible_until = self.now - seconds

    def delay_events(self, every: int, within_seconds: int) -> None:
        """Make every `every`-th event of the last `within_seconds` arrive late: hidden until reveal()."""
        first = self.events.first_at_or_after(self.now - within_seconds)
        self.late_events = frozenset(range(first, self.events.count, every))

    def reveal(self) -> None:
        self.visible_until = self.now
        self.late_events = frozenset()

    def collection(self, name: str) -> list[Record]:
        return [record for record in getattr(self, name) if record.visible_from <= self.visible_until]


class Profiles:
    """Profiles keep only their timestamps in memory; the rest is rendered from (seed, index)."""

    def __init__(self, seed: int, count: int, start: int, end: int) -> None:
        self.seed, self.count = seed, count
        self.ids = [make_id(7, index, seed, width=8) for index in range(count)]
        span = max(1, end - start)
        self.created = array("q", (start + mix(seed, 7, i, 1) % span for i in range(count)))
        self.updated = array("q", (c + mix(seed, 7, i, 2) % max(1, end - c) for i, c in enumerate(self.created)))
        self.order = {
            name: sorted(range(count), key=values.__getitem__)
            for name, values in (("created", self.created), ("updated", self.updated))
        }

    def record(self, index: int) -> Record:
        seed = self.seed
        first, last = FIRST_NAMES[mix(seed, 12, index) % 10], LAST_NAMES[mix(seed, 13, index) % 10]
        city, region, country, zip_code = CITIES[mix(seed, 14, index) % len(CITIES)]
        created, updated = self.created[index], self.updated[index]
        email = f"{first.lower()}.{last.lower()}.{index}@example.com"
        phone = f"+1555{mix(seed, 15, index) % 10_000_000:07d}"
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
        )


def parse_now(text: str | None) -> int | None:
    """`YYYY-MM-DDTHH:MM:SSZ` as epoch seconds; None keeps the real time."""
    if not text:
        return None
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
