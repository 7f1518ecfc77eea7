"""The simulator's HTTP server: Klaviyo's endpoints, checks, rate limits and faults on asyncio.

One event loop serves many keep-alive connections; a request is parsed,
checked (key, scope, rate limit, the revision's OpenAPI contract), answered
from the dataset, and optionally disturbed by the configured faults. Faults are
drawn from a seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import socket
import struct
import threading
import time
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from integration_tests.klaviyo_sim import resources
from integration_tests.klaviyo_sim.aggregates import aggregate, page_of
from integration_tests.klaviyo_sim.data import DAY, Dataset, Record, iso
from integration_tests.klaviyo_sim.prerender import INCLUDE, PrerenderedEvents
from integration_tests.klaviyo_sim.query import COMPARE, decode_cursor, encode_cursor, matches, select, terms_of
from integration_tests.klaviyo_sim.reports import report
from klaviyo_spec.contract import Operation, Violation, request_contract

REVISIONS = (resources.CURRENT, resources.RETIRED)
FULL_ACCESS_KEY = "pk_sim_full_access_0123456789abcdef"
ACCOUNT = "simulated-account"  # every key belongs to it, so they share its rate limits
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    410: "Gone",
    429: "Too Many Requests",
}
READ_SCOPES = frozenset(
    {
        "accounts:read",
        "campaigns:read",
        "templates:read",
        "profiles:read",
        "events:read",
        "metrics:read",
        "lists:read",
        "list:read",
        "segments:read",
        "flows:read",
        "tags:read",
        "coupons:read",
        "coupon-codes:read",
        "forms:read",
        "catalogs:read",
    }
)
# Page sizes of endpoints whose revision takes no page[size] (what their descriptions promise);
# None: the whole collection in one page (campaign messages are not paged at all).
FIXED_PAGE_SIZES: dict[str, int | None] = {
    "metrics": 200,
    "events": 200,
    "campaigns": 10,
    "templates": 10,
    "lists": 10,
    "segments": 10,
    "tags": 50,
    "tag-groups": 25,
    "coupons": 100,
    "coupon-codes": 100,
    "catalog-items": 100,
    "catalog-variants": 100,
    "catalog-categories": 100,
    "campaign-messages": None,
}
# Collections Klaviyo lists without their archived records unless the filter says equals(archived,true).
ARCHIVABLE = ("campaigns", "flows")
REPORT_PAGE = 100  # results per page of a paged report
SUPPRESSION = "subscriptions.email.marketing.suppression."
LIST_SUPPRESSION = "subscriptions.email.marketing.list_suppressions."


def key_without(*scopes: str) -> str:
    """A key of the simulated account that lacks `scopes`, e.g. key_without("lists:read")."""
    return "pk_sim_without_" + "_".join(scope.replace(":", "-") for scope in scopes)


def _scope_of(part: str) -> str:
    """A key's `coupon-codes-read` back to `coupon-codes:read` (the action, after the last dash, has none)."""
    name, _, action = part.rpartition("-")
    return f"{name}:{action}" if name else part


def scopes_of(key: str | None) -> frozenset[str] | None:
    """The scopes a key holds; None for a key the account does not know."""
    if key == FULL_ACCESS_KEY:
        return READ_SCOPES
    if key and key.startswith("pk_sim_without_"):
        missing = {_scope_of(part) for part in key.removeprefix("pk_sim_without_").split("_")}
        return READ_SCOPES - missing
    return None


@dataclass
class Faults:
    """What goes wrong, and how often. Rates are shares of requests (0 to 1)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0  # answered 500/502/503/504
    reset_rate: float = 0.0  # connection reset before any answer
    truncate_rate: float = 0.0  # 200 whose JSON body is cut short
    slow_rate: float = 0.0  # answered only after slow_seconds
    slow_seconds: float = 0.0
    throttle_rate: float = 0.0  # answered 429 with Retry-After: retry_after_seconds, whatever the limits
    retry_after_seconds: int = 1
    rate_limit_scale: float = 1.0  # multiplies Klaviyo's limits; 0 turns rate limiting off
    competing_share: float = 0.0  # share of every window (and day) another client of the account uses: RateLimiter
    v1_gone: bool = False  # /api/v1/campaigns answers 410 Gone, as the live API does
    break_after: int = 0  # after this many API requests every request fails with a 400 (0: never)
    linkage_omitted: bool = False  # to-many relationships come as links only, even when included
    fault_seed: int = 7  # faults are drawn from this, so a run repeats

    def update(self, changes: dict[str, Any]) -> None:
        """Set faults, each converted to its field's type (its default's: Faults(rate_limit_scale=0) holds an int,
        which would turn a later 0.4 into 0)."""
        kinds = {item.name: type(item.default) for item in fields(self)}
        for name, value in changes.items():
            if name not in kinds:
                raise ValueError(f"unknown fault {name!r}")
            setattr(self, name, kinds[name](value))


def scaled_limit(limit: int, scale: float) -> int:
    """A published limit times `rate_limit_scale`: a window of at least one call."""
    return max(1, int(limit * scale))


def competing_calls(limit: int, share: float) -> int:
    """The calls another client of the account makes in a window of `limit`: its `share`, in whole calls."""
    return int(limit * share)


def calls_made(calls: int, elapsed: float) -> int:
    """How many of a window's `calls`, spread evenly across it (each in the middle of its slot), are made
    `elapsed` (0 to 1) into the window."""
    return min(calls, int(calls * elapsed + 0.5))


class RateLimiter:
    """Klaviyo's two fixed windows per account and endpoint, burst per second and steady per minute, and another
    client of the account (one of the store's apps) using `competing_share` of each of them.

    The other client spreads its calls of a window evenly across it. A call of ours is answered while the window
    has room beside our calls and the other client's calls so far, else 429 until the window ends. A call of the
    other client that finds the window full gets the 429 instead: in a window they come to max(0, ours + theirs -
    limit) in whatever order the calls arrive, so each call of ours beyond our own share (the limit less theirs)
    counts one in `stats["competitor_429"]` as it is answered, though the call it crowds out may come later in
    the window.
    """

    def __init__(self, faults: Faults, stats: Counter[str], clock=time.time) -> None:
        self.faults, self.stats, self.clock = faults, stats, clock
        self.windows: dict[tuple, tuple[int, int]] = {}  # (bucket, length) -> (window, our calls in it)
        self.lock = threading.Lock()

    def take(self, bucket: tuple, burst: int, steady: int) -> tuple[int | None, int, int]:
        """(Retry-After seconds if throttled, the tighter limit, calls remaining in it)."""
        scale = self.faults.rate_limit_scale
        if scale <= 0 or not burst:
            return None, 0, 0
        now = self.clock()
        with self.lock:
            counts = []
            for length, published in ((1, burst), (60, steady)):
                limit = scaled_limit(published, scale)
                window = int(now // length)
                start, count = self.windows.get((bucket, length), (window, 0))
                count = count if start == window else 0
                theirs = competing_calls(limit, self.faults.competing_share)
                made = calls_made(theirs, now / length - window)
                if count + made >= limit:
                    return max(1, math.ceil((window + 1) * length - now)), limit, 0
                counts.append((length, window, count, limit, theirs, made))
            for length, window, count, *_ in counts:
                self.windows[(bucket, length)] = (window, count + 1)
            if any(count >= limit - theirs for _, _, count, limit, theirs, _ in counts):
                self.stats["competitor_429"] += 1
        remaining = min(limit - count - made - 1 for _, _, count, limit, _, made in counts)
        return None, min(limit for _, _, _, limit, _, _ in counts), remaining


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/vnd.api+json"


class Simulator:
    def __init__(self, dataset: Dataset, faults: Faults | None = None, daily_cap: int = 225) -> None:
        self.dataset = dataset
        self.faults = faults or Faults()
        self.stats: Counter[str] = Counter()
        self.limiter = RateLimiter(self.faults, self.stats)
        # Requests a day each Reporting API operation answers (the spec's 225/d unless set); 200s count.
        self.daily_cap = daily_cap
        self.daily_used: Counter[str] = Counter()
        self._quota_day: int | None = None  # the UTC day (by the limiter's clock) daily_used counts
        self.random = random.Random(self.faults.fault_seed)
        # (method, path, query, body) of the latest API requests, for tests to inspect.
        self.log: deque[tuple[str, str, dict[str, str], bytes]] = deque(maxlen=100_000)
        self.keys_seen: set[str | None] = set()  # API keys the requests carried (header or v1 query)
        self._selections: OrderedDict[tuple, list] = OrderedDict()
        self._prerendered_events: tuple[int, PrerenderedEvents] | None = None  # (dataset version, events)
        # (stats counter, the count it must reach, fault changes): see switch_faults_at and _after_records
        self._switches: list[tuple[str, int, dict[str, Any]]] = []
        self.url = ""

    def switch_faults_at(self, request: int, changes: dict[str, Any]) -> None:
        """Change the faults when the `request`-th API request arrives: a fault that starts mid-read."""
        self._switches.append(("requests", request, changes))

    def switch_faults_after_records(self, records: int, changes: dict[str, Any]) -> None:
        """Change the faults for the requests that arrive once `records` resources have been served: a fault
        that starts after data moved, wherever in the read the pages with data fall."""
        self._switches.append(("records_served", records, changes))

    # -- HTTP -------------------------------------------------------------------------------
    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                if not await self._respond(method, target, headers, body, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # stop() cancels connections still waiting for a request; ending quietly keeps asyncio's
            # stream callback from logging the cancellation as an error.
            return
        finally:
            writer.close()

    async def _respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must end."""
        admin = target.startswith("/__sim/")
        if not admin:
            self.stats["requests"] += 1
            for switch in [switch for switch in self._switches if switch[1] <= self.stats[switch[0]]]:
                self._switches.remove(switch)
                self.faults.update(switch[2])
            if self.faults.latency_ms:
                await asyncio.sleep(self.faults.latency_ms / 1000)
            draw = self.random.random()
            if draw < self.faults.reset_rate:
                self.stats["resets"] += 1
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            if self.random.random() < self.faults.slow_rate:
                self.stats["slow"] += 1
                await asyncio.sleep(self.faults.slow_seconds)
        answer = self.handle(method, target, headers, body)
        payload = answer.body if isinstance(answer.body, bytes) else orjson.dumps(answer.body)
        if not admin and answer.status == 200 and self.random.random() < self.faults.truncate_rate:
            self.stats["truncated"] += 1
            payload = payload[: max(1, len(payload) // 2)]
        if not admin:
            self.stats[f"status_{answer.status}"] += 1
            if answer.status == 200 and isinstance(answer.body, dict) and isinstance(answer.body.get("data"), list):
                self.stats["records_served"] += len(answer.body["data"])
        # Every answer carries its time, as HTTP servers do (by the limiter's clock, which tests may set).
        headers = {"Date": formatdate(self.limiter.clock(), usegmt=True), **answer.headers}
        head = [
            f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, 'Error')}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(payload)}",
        ]
        head += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()
        return True

    # -- routing ----------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        url = urlsplit(target)
        query = parse_qsl(url.query, keep_blank_values=True)
        base = f"http://{headers.get('host', '127.0.0.1')}"
        if url.path.startswith("/__sim/"):
            return self.admin(method, url.path, dict(query), body)
        self.log.append((method, url.path, dict(query), body))
        self.keys_seen.add(
            headers.get("authorization", "").removeprefix("Klaviyo-API-Key ") or dict(query).get("api_key")
        )
        if self.faults.break_after and self.stats["requests"] > self.faults.break_after:
            return Answer(400, Violation("Simulated failure: the simulator was told to break here.").body())
        if self.faults.throttle_rate and self.random.random() < self.faults.throttle_rate:
            self.stats["throttled"] += 1
            wait = self.faults.retry_after_seconds
            detail = f"Request was throttled. Expected available in {wait} second{'s' if wait != 1 else ''}."
            return Answer(429, _error(429, "throttled", "Request was throttled.", detail), {"Retry-After": str(wait)})
        if not self.faults.error_rate or self.random.random() >= self.faults.error_rate:
            if url.path.rstrip("/") == "/api/v1/campaigns":
                return self.v1_campaigns(dict(query))
            return self.api(method, url.path, query, headers, body, base)
        self.stats["errors_injected"] += 1
        status = self.random.choice([500, 502, 503, 504])
        return Answer(status, _error(status, "server_error", "A server error occurred.", "Please try again later."))

    def api(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes, base: str
    ) -> Answer:
        revision = headers.get("revision")
        if revision not in REVISIONS:
            return Answer(400, Violation(f"Missing or invalid revision header: {revision!r}.", "revision").body())
        answer = self._api(revision, method, path, query, headers, body, base)
        answer.content_type = "application/json" if revision == resources.RETIRED else "application/vnd.api+json"
        return answer

    def _api(
        self,
        revision: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
        base: str,
    ) -> Answer:
        found = request_contract(revision).match(method, path)
        if found is None:
            return Answer(404, Violation(f"{method} {path} does not exist in revision {revision}.", status=404).body())
        operation, variables = found
        auth = headers.get("authorization", "")
        scopes = scopes_of(auth.removeprefix("Klaviyo-API-Key ")) if auth.startswith("Klaviyo-API-Key ") else None
        if scopes is None:
            return Answer(
                401,
                _error(
                    401,
                    "not_authenticated",
                    "Incorrect authentication credentials.",
                    "Incorrect authentication credentials.",
                ),
            )
        missing = [scope for scope in operation.scopes if scope not in scopes]
        # Klaviyo: a key needs read access to the endpoint and to each resource it includes.
        missing += [
            scope for scope in self._include_scopes(query, revision) if scope not in scopes and scope not in missing
        ]
        if missing:
            detail = f"You do not have permission to perform this action. Missing scope: {', '.join(missing)}."
            return Answer(
                403, _error(403, "permission_denied", "You do not have permission to perform this action.", detail)
            )
        if operation.daily:
            refused = self._daily_quota(operation.operation_id)
            if refused:
                return refused
        params = dict(query)
        burst, steady = operation.burst, operation.steady
        bucket: tuple = (ACCOUNT, operation.operation_id)
        if operation.predictive_limits and "predictive_analytics" in params.get("additional-fields[profile]", ""):
            burst, steady = operation.predictive_limits  # the tier the operation's description gives
            bucket = (ACCOUNT, operation.operation_id, "predictive")
        retry_after, limit, remaining = self.limiter.take(bucket, burst, steady)
        if retry_after is not None:
            self.stats["throttled"] += 1
            detail = (
                f"Request was throttled. Expected available in {retry_after} second{'s' if retry_after != 1 else ''}."
            )
            return Answer(
                429, _error(429, "throttled", "Request was throttled.", detail), {"Retry-After": str(retry_after)}
            )
        sent_type = headers.get("content-type", "").split(";")[0].strip()
        if operation.body_content_type and sent_type != operation.body_content_type:
            detail = f"Unsupported media type {sent_type!r}: send the body as {operation.body_content_type}."
            return Answer(415, _error(415, "unsupported_media_type", "Unsupported media type.", detail))
        try:
            parsed_body = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return Answer(400, Violation("The request body is not valid JSON.").body())
        violation = operation.check(query, parsed_body)
        if violation:
            return Answer(violation.status, violation.body())
        parts = operation.path.strip("/").split("/")  # api, collection[, {id}, child collection]
        if parts[1] == "metric-aggregates":
            answer = self.metric_aggregates(parsed_body, revision, base, path)
        elif parts[1] == "accounts":
            account = resources.render_account(self.dataset, base)
            answer = Answer(200, {"data": [account], "links": {"self": f"{base}{path}"}})
        elif parts[1].endswith("-reports"):
            answer = self.report(parts[1].removesuffix("-reports"), parsed_body, params, operation, base, path)
        elif len(parts) == 4:
            answer = self.collection(parts[3], revision, params, base, path, operation, (parts[1], variables["id"]))
        else:
            answer = self.collection(parts[1], revision, params, base, path, operation)
        if operation.daily and answer.status == 200:
            self._spend_day(operation.operation_id)
        if limit and answer.status == 200:
            answer.headers.update(
                {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": "1"}
            )
        return answer

    # -- collections ------------------------------------------------------------------------
    def collection(
        self,
        name: str,
        revision: str,
        params: dict[str, str],
        base: str,
        path: str,
        operation: Operation,
        parent: tuple[str, str] | None = None,
    ) -> Answer:
        """A page of a collection, or of a parent's children (parent = (collection, id)) such as a
        flow's actions or a list's members (name "profiles" under "lists" or "segments")."""
        if parent is not None and self.dataset.find(*parent) is None:
            kind = resources.TYPES.get(parent[0], parent[0]).replace("-", " ")
            return Answer(404, _error(404, "not_found", "Not found.", f"A {kind} with id {parent[1]} does not exist."))
        members = parent is not None and name == "profiles"
        size_schema = operation.query.get("page[size]")
        if size_schema is not None:
            size: int | None = int(params.get("page[size]") or size_schema.get("default") or 0) or None
        else:
            size = FIXED_PAGE_SIZES.get(name)
        offset = decode_cursor(params.get("page[cursor]"))
        if offset is None:
            return Answer(400, Violation("The page cursor is not valid.", "page[cursor]").body())
        terms = terms_of(params.get("filter"))
        problem = self._rule_of_the_endpoint(name, parent, terms, operation)
        if problem:
            return Answer(400, problem.body())
        if name in ARCHIVABLE and parent is None and not any(field == "archived" for _, field, _ in terms):
            terms.append(("equals", "archived", False))  # Klaviyo lists archived ones only when asked
        chosen = self._selection(name, parent, params.get("filter"), tuple(terms), params.get("sort"))
        end = len(chosen) if size is None else offset + size
        page = chosen[offset:end]
        include = list(dict.fromkeys(params["include"].split(","))) if params.get("include") else []
        wanted = set(params.get("additional-fields[profile]", "").split(",")) - {""}
        prerendered = self._prerendered(name, revision, base, include, members)
        records, data = [], []
        for item in page if prerendered is None else ():
            record, extras = self._record(name, item, members)
            if name == "profiles" and wanted:
                extras.update(resources.profile_extras(record, wanted, revision))
            records.append(record)
            linkage = not self.faults.linkage_omitted
            data.append(resources.render(name, record, revision, base, extras, include, linkage))
        links = {"self": f"{base}{path}" + (f"?{urlencode(params)}" if params else "")}
        # A revision without page[cursor] on the operation cannot follow a next link: one page only.
        if operation.pageable and end < len(chosen):
            links["next"] = f"{base}{path}?{urlencode({**params, 'page[cursor]': encode_cursor(end)})}"
        if operation.pageable and offset and size:
            links["prev"] = (
                f"{base}{path}?{urlencode({**params, 'page[cursor]': encode_cursor(max(0, offset - size))})}"
            )
        if prerendered is not None:
            metric = self._included_resource("metrics", revision, base)
            return Answer(
                200, {"data": prerendered.data(page), "links": links, "included": prerendered.included(page, metric)}
            )
        document: dict[str, Any] = {"data": data, "links": links}
        if include:
            document["included"] = self._included(records, include, revision, base)
        return Answer(200, document)

    def prerender_events(self) -> None:
        """Render every event now, for requests of the form `PrerenderedEvents` serves (after `start`)."""
        events, base = self.dataset.events, self.url

        def render(index: int) -> tuple[Any, Any]:
            record, extras = self._record("events", index, False)
            resource = resources.render("events", record, resources.CURRENT, base, extras, INCLUDE)
            return resource, resources.render_attribution(record, base) if record.relationships[
                "attributions"
            ] else None

        self._prerendered_events = (
            self.dataset.version,
            PrerenderedEvents(render, events.count, events.metric_ids, events.metric_of),
        )

    def _prerendered(
        self, name: str, revision: str, base: str, include: list[str], members: bool
    ) -> PrerenderedEvents | None:
        if self._prerendered_events is None or name != "events" or members:
            return None
        version, prerendered = self._prerendered_events
        current = (revision, base, tuple(include), self.dataset.version)
        return prerendered if current == (resources.CURRENT, self.url, INCLUDE, version) else None

    def _included_resource(self, collection: str, revision: str, base: str) -> Callable[[str], dict[str, Any] | None]:
        def rendered(record_id: str) -> dict[str, Any] | None:
            related = self._lookup(collection, record_id)
            return None if related is None else resources.render(collection, related, revision, base)

        return rendered

    @staticmethod
    def _rule_of_the_endpoint(
        name: str, parent: tuple[str, str] | None, terms: list, operation: Operation
    ) -> Violation | None:
        """What an endpoint's description demands beyond its parameters."""
        if name == "campaigns":
            channels = [value for op, field, value in terms if field == "messages.channel" and op == "equals"]
            if not channels:
                named = "|".join(f"'{channel}'" for channel in operation.channels or ("email", "sms"))
                return Violation(f"A channel filter is required: equals(messages.channel,{named}).", "filter")
            if operation.channels and any(channel not in operation.channels for channel in channels):
                return Violation(
                    f"'{channels[0]}' is not a valid channel; choose from {list(operation.channels)}.", "filter"
                )
        coupon_or_profile = any(field in ("coupon.id", "profile.id") for _, field, _ in terms)
        if name == "coupon-codes" and parent is None and not coupon_or_profile:
            return Violation(
                "A coupon or profile filter is required: equals(coupon.id,'...'), any(coupon.id,[...]), "
                "equals(profile.id,'...') or any(profile.id,[...]).",
                "filter",
            )
        return None

    @staticmethod
    def _include_scopes(query: list[tuple[str, str]], revision: str) -> list[str]:
        """The scopes of the resources `include=` asks for: those of each one's own GET endpoint in the spec."""
        scopes: list[str] = []
        for name in dict(query).get("include", "").split(","):
            collection = resources.INCLUDED_COLLECTION.get(name)
            operation = (
                request_contract(revision).operation("GET", resources.path_of(collection, revision))
                if collection
                else None
            )
            scopes += [scope for scope in (operation.scopes if operation else ()) if scope not in scopes]
        return scopes

    def _included(self, records: list[Record], include: list[str], revision: str, base: str) -> list[dict]:
        """The related resources a request includes, each once, in the order they are first linked."""
        seen: dict[tuple, dict] = {}
        for record in records:
            for name in include:
                if name == "attributions":
                    attribution = record.relationships.get("attributions")
                    if attribution and ("attribution", attribution[0]) not in seen:
                        seen[("attribution", attribution[0])] = resources.render_attribution(record, base)
                    continue
                target = resources.INCLUDED_COLLECTION.get(name)
                if target is None:  # a relationship the simulator holds nothing for (images, flow triggers)
                    continue
                for related_id in record.relationships.get(name, []):
                    if (target, related_id) not in seen:
                        seen[(target, related_id)] = self._included_resource(target, revision, base)(related_id)
        return [resource for resource in seen.values() if resource is not None]

    def _lookup(self, collection: str, record_id: str) -> Record | None:
        if collection == "profiles":
            index = self.dataset.profiles.index_of(record_id)
            return None if index is None else self.dataset.profiles.record(index)
        return self.dataset.find(collection, record_id)

    def _record(self, name: str, item: Any, members: bool) -> tuple[Record, dict[str, Any]]:
        """The record of a selected item, and the attributes to add to it."""
        if members:
            index, joined = item
            return self.dataset.profiles.record(index), {"joined_group_at": iso(joined)}
        if name == "events":
            return self.dataset.events.record(item), {}
        if name == "profiles":
            record = self.dataset.profiles.record(item)
            shown = iso(self.dataset.visible_until)  # a suppression shows up at its own time
            for kind in ("suppression", "list_suppressions"):
                record.extra[kind] = [entry for entry in record.extra[kind] if entry["timestamp"] <= shown]
            return record, {}
        return item, {}

    def _selection(
        self, name: str, parent: tuple[str, str] | None, expression: str | None, terms: tuple, sort: str | None
    ) -> list:
        """The full ordered result of a query, kept for its pages (until the dataset changes)."""
        dataset = self.dataset
        frozen = tuple((op, field, tuple(value) if isinstance(value, list) else value) for op, field, value in terms)
        key = (name, parent, expression, frozen, sort, dataset.visible_until, dataset.late_events, dataset.version)
        if key in self._selections:
            self._selections.move_to_end(key)
            return self._selections[key]
        if parent is not None and name == "profiles":
            chosen: list = self._select_members(parent, list(terms), sort)
        elif parent is not None:
            chosen = select(dataset.children(name, parent[1]), terms, sort)
        elif name == "events":
            chosen = self._select_events(list(terms), sort)
        elif name == "profiles":
            chosen = self._select_profiles(list(terms), sort)
        else:
            chosen = select(dataset.collection(name), terms, sort)
        self._selections[key] = chosen
        if len(self._selections) > 64:
            self._selections.popitem(last=False)
        return chosen

    def _select_events(self, terms: list, sort: str | None) -> list:
        events = self.dataset.events
        low, high = 0, events.count
        high = min(high, events.first_at_or_after(self.dataset.visible_until + 1))
        rest = []
        for operator, name, value in terms:
            if name in ("datetime", "timestamp") and operator in COMPARE:
                bound = {
                    "greater-than": value + 1,
                    "greater-or-equal": value,
                    "less-than": value,
                    "less-or-equal": value + 1,
                }[operator]
                index = events.first_at_or_after(bound)
                low, high = (max(low, index), high) if operator.startswith("greater") else (low, min(high, index))
            else:
                rest.append((operator, name, value))
        metric = next((value for operator, name, value in rest if name == "metric_id" and operator == "equals"), None)
        if metric is not None:
            position = events.metric_ids.index(metric) if metric in events.metric_ids else None
            indexes = events.by_metric[position] if position is not None else []
            candidates: Any = indexes[bisect.bisect_left(indexes, low) : bisect.bisect_left(indexes, high)]
            rest = [term for term in rest if term[1] != "metric_id"]
        else:
            candidates = range(low, max(low, high))
        if rest:
            candidates = [index for index in candidates if matches(events.record(index), rest)]
        if self.dataset.late_events:
            candidates = [index for index in candidates if index not in self.dataset.late_events]
        return list(reversed(candidates)) if (sort or "").startswith("-") else candidates

    def _select_profiles(self, terms: list, sort: str | None) -> list:
        profiles = self.dataset.profiles
        visible = self.dataset.visible_until
        # To a query on suppressions a profile is there once created: its suppressions show up at their own times.
        on_suppressions = any(name.startswith((SUPPRESSION, LIST_SUPPRESSION)) for _, name, _ in terms)
        shown_from = profiles.created if on_suppressions else profiles.updated
        chosen = [i for i in range(profiles.count) if shown_from[i] <= visible]
        times = {"created": profiles.created, "updated": profiles.updated}
        rest = []
        for operator, name, value in terms:
            if name in times and operator in COMPARE:
                values, compare = times[name], COMPARE[operator]
                chosen = [i for i in chosen if compare(values[i], value)]
            elif name.startswith((SUPPRESSION, LIST_SUPPRESSION)):
                chosen = [i for i in chosen if _suppression_matches(self.dataset, i, operator, name, value)]
            else:
                rest.append((operator, name, value))
        if rest:
            chosen = [i for i in chosen if matches(profiles.record(i), rest)]
        field = (sort or "").lstrip("-")
        descending = (sort or "").startswith("-")
        if field in times:
            chosen.sort(key=times[field].__getitem__, reverse=descending)
        elif field in (SUPPRESSION + "timestamp", LIST_SUPPRESSION + "timestamp"):
            # Profiles holding such a suppression in timestamp order (a list-suppressed profile by its
            # newest list suppression); the others follow in their usual order, whichever the direction.
            dataset = self.dataset
            if field.startswith(SUPPRESSION):
                stamps = {i: held[1] for i in chosen if (held := dataset.suppression(i))}
            else:
                stamps = {i: max(at for *_, at in held) for i in chosen if (held := dataset.list_suppressions(i))}
            having = sorted(stamps, key=stamps.__getitem__, reverse=descending)
            chosen = having + [i for i in chosen if i not in stamps]
        return chosen

    def _select_members(self, parent: tuple[str, str], terms: list, sort: str | None) -> list:
        """(profile index, joined_group_at) of a list's or segment's visible members."""
        profiles = self.dataset.profiles
        chosen = self.dataset.members(*parent)
        rest = []
        for operator, name, value in terms:
            if name == "joined_group_at" and operator in COMPARE:
                compare = COMPARE[operator]
                chosen = [(i, at) for i, at in chosen if compare(at, value)]
            else:
                rest.append((operator, "id" if name == "profile_id" else name, value))
        if rest:
            chosen = [(i, at) for i, at in chosen if matches(profiles.record(i), rest)]
        if sort:
            chosen = sorted(chosen, key=lambda member: member[1], reverse=sort.startswith("-"))
        return chosen

    def metric_aggregates(self, body: dict, revision: str, base: str, path: str) -> Answer:
        attributes = body["data"]["attributes"]
        result = aggregate(self.dataset, attributes, revision)
        if isinstance(result, Violation):
            return Answer(result.status, result.body())
        paged = page_of(result["data"], attributes.get("page_cursor"), int(attributes.get("page_size") or 500))
        if isinstance(paged, Violation):
            return Answer(paged.status, paged.body())
        rows, next_offset = paged
        links = {"self": f"{base}{path}"}
        if next_offset is not None:
            links["next"] = f"{base}{path}?{urlencode({'page_cursor': str(next_offset)})}"
        resource = {
            "type": "metric-aggregate",
            "id": f"agg-{abs(hash(orjson.dumps(attributes))) % 10**12}",
            "attributes": {"dates": result["dates"], "data": rows},
            "links": links,
        }
        return Answer(200, {"data": resource, "links": links})

    def _daily_quota(self, operation_id: str) -> Answer | None:
        """429 once the operation has answered daily_cap requests this UTC day (by the limiter's clock), ours and
        the other client's so far (its share of the day, spread across it as in each rate-limit window)."""
        now = self.limiter.clock()
        today = int(now // DAY)
        if today != self._quota_day:
            self._quota_day = today
            self.daily_used.clear()
        theirs = calls_made(competing_calls(self.daily_cap, self.faults.competing_share), now / DAY - today)
        if self.daily_used[operation_id] + theirs < self.daily_cap:
            return None
        self.stats["throttled_daily"] += 1
        wait = max(1, math.ceil((today + 1) * DAY - now))  # until the next UTC midnight
        detail = (
            f"Daily limit of {self.daily_cap} requests reached for {operation_id}. "
            f"Expected available in {wait} seconds."
        )
        # Dated with the moment the wait is counted from, so Date + Retry-After is the next UTC midnight exactly.
        headers = {"Retry-After": str(wait), "Date": formatdate(now, usegmt=True)}
        return Answer(429, _error(429, "throttled", "Request was throttled.", detail), headers)

    def _spend_day(self, operation_id: str) -> None:
        """A request of the operation's day answered; one beyond our share of the day crowds out one of the other
        client's (see RateLimiter)."""
        ours = self.daily_cap - competing_calls(self.daily_cap, self.faults.competing_share)
        if self.daily_used[operation_id] >= ours:
            self.stats["competitor_429"] += 1
        self.daily_used[operation_id] += 1

    def next_day(self) -> None:
        """Start a new quota day: every operation's daily count back to 0."""
        self.daily_used.clear()

    def report(
        self, kind: str, body: dict, params: dict[str, str], operation: Operation, base: str, path: str
    ) -> Answer:
        """A Reporting API answer; operations whose spec takes page_cursor answer REPORT_PAGE results a page."""
        attributes = body["data"]["attributes"]
        computed = report(self.dataset, kind, attributes)
        if isinstance(computed, Violation):
            return Answer(computed.status, computed.body())
        results, date_times = computed
        links = {"self": f"{base}{path}" + (f"?{urlencode(params)}" if params else "")}
        if "page_cursor" in operation.query:
            paged = page_of(results, params.get("page_cursor"), REPORT_PAGE)
            if isinstance(paged, Violation):
                return Answer(paged.status, paged.body())
            results, next_offset = paged
            if next_offset is not None:
                links["next"] = f"{base}{path}?{urlencode({**params, 'page_cursor': str(next_offset)})}"
        report_attributes: dict[str, Any] = {"results": results}
        if date_times is not None:
            report_attributes["date_times"] = date_times
        resource = {
            "type": f"{kind}-report",
            "id": f"{kind}-{zlib.crc32(orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)):08x}",
            "attributes": report_attributes,
        }
        return Answer(200, {"data": resource, "links": links})

    def v1_campaigns(self, params: dict[str, str]) -> Answer:
        """The retired v1 API: api_key in the query, page/count paging, its own envelope."""
        if self.faults.v1_gone:
            return Answer(
                410,
                {
                    "status": 410,
                    "message": "This API version is no longer supported. Use the current API (https://developers.klaviyo.com).",
                },
                content_type="application/json",
            )
        if scopes_of(params.get("api_key")) is None:
            return Answer(
                403, {"status": 403, "message": "The API key specified is invalid."}, content_type="application/json"
            )
        try:
            page, count = int(params.get("page", 0)), int(params.get("count", 50))
        except ValueError:
            return Answer(
                400, {"status": 400, "message": "page and count must be integers."}, content_type="application/json"
            )
        if page < 0 or not 1 <= count <= 100:
            return Answer(
                400,
                {"status": 400, "message": "page must be >= 0 and count between 1 and 100."},
                content_type="application/json",
            )
        campaigns = [c for c in self.dataset.collection("campaigns")]
        items = [_v1_campaign(c) for c in campaigns[page * count : (page + 1) * count]]
        envelope = {
            "object": "$list",
            "page": page,
            "start": page * count,
            "end": page * count + max(0, len(items) - 1),
            "total": len(campaigns),
            "page_size": len(items),
            "data": items,
        }
        return Answer(200, envelope, content_type="application/json")

    # -- admin ------------------------------------------------------------------------------
    def admin(self, method: str, path: str, params: dict[str, str], body: bytes) -> Answer:
        if path == "/__sim/stats":
            return Answer(200, dict(self.stats), content_type="application/json")
        if path == "/__sim/faults" and method == "POST":
            self.faults.update(orjson.loads(body or b"{}"))
            return Answer(200, asdict(self.faults), content_type="application/json")
        if path == "/__sim/daily-cap" and method == "POST":
            try:
                self.daily_cap = int(params["cap"])
            except (KeyError, ValueError):
                return Answer(400, {"detail": "expected ?cap=<requests a day>"}, content_type="application/json")
            return Answer(200, {"daily_cap": self.daily_cap}, content_type="application/json")
        if path == "/__sim/next-day" and method == "POST":
            self.next_day()
            return Answer(200, {"daily_cap": self.daily_cap, "daily_used": {}}, content_type="application/json")
        if path == "/__sim/reveal" and method == "POST":
            self.dataset.reveal()
            return Answer(200, {"visible_until": iso(self.dataset.visible_until)}, content_type="application/json")
        if path == "/__sim/delete" and method == "POST":
            # {"collection": "flows", "id": "..."}: the record (and its children) disappear from now on.
            try:
                request = orjson.loads(body or b"{}")
                collection, record_id = request["collection"], request["id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return Answer(
                    400, {"detail": 'expected {"collection": ..., "id": ...}'}, content_type="application/json"
                )
            try:
                deleted = self.dataset.delete(collection, record_id)
            except KeyError as error:
                return Answer(404, {"detail": error.args[0]}, content_type="application/json")
            return Answer(
                200,
                {"deleted": [{"collection": name, "id": item} for name, item in deleted]},
                content_type="application/json",
            )
        return Answer(404, {"detail": f"no admin route {method} {path}"}, content_type="application/json")

    # -- running --------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.AbstractServer:
        server = await asyncio.start_server(self.serve_connection, host, port, limit=1 << 20, backlog=512)
        bound_port = server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{bound_port}"
        return server

    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorThread:
        return SimulatorThread(self, host, port)


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread (for tests): `with sim.run_in_thread(): ...`."""

    def __init__(self, simulator: Simulator, host: str, port: int) -> None:
        self.simulator = simulator
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self._server = self.loop.run_until_complete(simulator.start(host, port))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="klaviyo-sim", daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in connections:  # keep-alive connections still waiting for a request
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> Simulator:
        return self.simulator

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _suppression_matches(dataset: Dataset, index: int, operator: str, name: str, value: Any) -> bool:
    """Whether one of profile `index`'s (global or list) email suppressions shown now satisfies the term; a
    profile without such a suppression never does."""
    if name.startswith(SUPPRESSION):
        held = dataset.suppression(index)
        entries = [{"reason": held[0], "timestamp": held[1]}] if held else []
        field = name.removeprefix(SUPPRESSION)
    else:
        entries = [
            {"list_id": list_id, "reason": reason, "timestamp": at}
            for list_id, reason, at in dataset.list_suppressions(index)
        ]
        field = name.removeprefix(LIST_SUPPRESSION)
    for entry in entries:
        actual = entry.get(field)
        if operator in COMPARE and actual is not None and COMPARE[operator](actual, value):
            return True
        if operator == "equals" and actual == value:
            return True
        if operator == "any" and actual in value:
            return True
    return False


def _error(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "id": "00000000-0000-4000-8000-000000000000",
                "status": status,
                "code": code,
                "title": title,
                "detail": detail,
                "source": {"pointer": "/data/"},
            }
        ]
    }


def _v1_campaign(record: Record) -> dict[str, Any]:
    attributes = record.attributes

    def plain(value: str) -> str:  # v1 wrote "YYYY-MM-DD HH:MM:SS" in UTC
        return value[:19].replace("T", " ")

    return {
        "object": "campaign",
        "id": record.id,
        "name": attributes["name"],
        "subject": f"{attributes['name']} news",
        "from_email": "news@example.com",
        "from_name": "Example",
        "lists": [{"object": "list", "id": list_id} for list_id in attributes["audiences"]["included"]],
        "excluded_lists": [],
        "status": "sent" if attributes["status"] == "Sent" else "draft",
        "status_id": 1 if attributes["status"] == "Sent" else 2,
        "status_label": attributes["status"],
        "sent_at": plain(attributes["send_time"]) if attributes["status"] == "Sent" else None,
        "send_time": plain(attributes["send_time"]),
        "created": plain(attributes["created_at"]),
        "updated": plain(attributes["updated_at"]),
        "num_recipients": 100,
        "campaign_type": "Regular",
        "is_segmented": False,
        "message_type": record.fields["messages.channel"],
        "template_id": None,
    }
