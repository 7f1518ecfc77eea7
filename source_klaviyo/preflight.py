"""What the key can read, from one one-record request per stream and one per included resource, before any data
moves.

check reports it. A read refuses at once a key Klaviyo rejects, or one that can
read none of the selected streams; otherwise it reads every stream the key can,
each without the includes whose scope the key lacks (the fields they fill left
out, with one warning), and then ends with one config error naming each missing
scope and the streams it blocked: least-privilege keys read what they can.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from source_klaviyo.endpoints import INCLUDE_ENDPOINTS
from source_klaviyo.errors import config_error, key_rejected_message, missing_scopes_message
from source_klaviyo.streams import KlaviyoStream
from source_klaviyo.streams.children import ParentCollection


@dataclass
class Access:
    """What the key can read, from one probe per stream and per scope an include needs."""

    key_accepted: bool = True
    readable: set[str] = field(default_factory=set)
    missing_scopes: dict[str, str] = field(default_factory=dict)  # stream -> the scope it needs
    retired: dict[str, str] = field(default_factory=dict)  # stream -> what its 410 means
    # include -> (its scope, {stream: the fields it fills}) for each include whose scope the key lacks
    missing_includes: dict[str, tuple[str, dict[str, list[str]]]] = field(default_factory=dict)

    @classmethod
    def probe(cls, streams: list[KlaviyoStream], workers: int) -> Access:
        """The first probe alone (after a 401 no probe can pass), then the others side by side; then the scope
        of each include the readable streams ask for, on the included resource's own endpoint."""
        if not streams:
            return cls()
        first = streams[0].probe()
        if first == 401:
            return cls(key_accepted=False)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            statuses = [first, *pool.map(lambda stream: stream.probe(), streams[1:])]
        if 401 in statuses:
            return cls(key_accepted=False)
        access = cls()
        for stream, status in zip(streams, statuses, strict=True):
            if status == 403:
                access.missing_scopes[stream.name] = stream.scope
            elif status == 410:
                access.retired[stream.name] = stream.retired_message()
            elif status is not None:
                access.readable.add(stream.name)
        # What the probes above told of an endpoint (read, or not for lack of its scope) answers for its includes.
        known = {
            stream.endpoint_name: status
            for stream, status in zip(streams, statuses, strict=True)
            if status in (200, 403)
        }
        access._probe_includes([stream for stream in streams if stream.name in access.readable], known)
        return access

    def _probe_includes(self, streams: list[KlaviyoStream], known: dict[str, int]) -> None:
        asking = {name: stream for stream in streams for name in stream.include_scopes()}
        for name, stream in asking.items():
            endpoint = INCLUDE_ENDPOINTS[name]
            if (known.get(endpoint) or ParentCollection(stream, endpoint).probe()) == 403:
                fields = {other.name: other.fields_from(name) for other in streams if name in other.include_scopes()}
                self.missing_includes[name] = (stream.include_scopes()[name], fields)

    def add(self, other: Access) -> None:
        self.readable |= other.readable
        self.missing_scopes.update(other.missing_scopes)
        self.retired.update(other.retired)
        self.missing_includes.update(other.missing_includes)

    @property
    def unreadable(self) -> set[str]:
        return {*self.missing_scopes, *self.retired}

    def problem(self) -> str:
        parts = [missing_scopes_message(self.missing_scopes)] if self.missing_scopes else []
        return " ".join(parts + sorted(set(self.retired.values())))

    def include_problem(self) -> str:
        """What the read leaves out for lack of include scopes ("" when nothing)."""
        parts = []
        for scope, fields in self.missing_includes.values():
            left_out = "; ".join(
                f"{stream} without {', '.join(names) or 'what it includes'}" for stream, names in sorted(fields.items())
            )
            parts.append(f"The API key lacks {scope}, so these streams are read without what it includes: {left_out}.")
        return " ".join(parts) + (" Add the scope to the key to read them whole." if parts else "")


def preflight(streams: list[KlaviyoStream], workers: int) -> Access:
    """What the key can read of `streams`; one config error when it is rejected or can read none of them."""
    access = Access.probe(streams, workers)
    if not access.key_accepted:
        raise config_error(key_rejected_message())
    if streams and {stream.name for stream in streams} <= access.unreadable:
        raise config_error(access.problem())
    return access
