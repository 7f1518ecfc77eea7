"""What the key can read, from one one-record request per stream, before any data moves.

check reports it; a read refuses a key Klaviyo rejects or one that lacks a
selected stream's scope, as one config error naming each missing scope and the
streams it blocks, instead of one failure per partition after some data moved.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from source_klaviyo.errors import config_error, key_rejected_message, missing_scopes_message
from source_klaviyo.streams import KlaviyoStream


@dataclass
class Access:
    """What the key can read, from one probe per stream."""

    key_accepted: bool = True
    readable: set[str] = field(default_factory=set)
    missing_scopes: dict[str, str] = field(default_factory=dict)  # stream -> the scope it needs
    retired: dict[str, str] = field(default_factory=dict)  # stream -> what its 410 means

    @classmethod
    def probe(cls, streams: list[KlaviyoStream], workers: int) -> Access:
        """The first probe alone (after a 401 no probe can pass), then the others side by side."""
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
        return access

    def add(self, other: Access) -> None:
        self.readable |= other.readable
        self.missing_scopes.update(other.missing_scopes)
        self.retired.update(other.retired)

    @property
    def unreadable(self) -> set[str]:
        return {*self.missing_scopes, *self.retired}

    def problem(self) -> str:
        parts = [missing_scopes_message(self.missing_scopes)] if self.missing_scopes else []
        return " ".join(parts + sorted(set(self.retired.values())))


def preflight(streams: list[KlaviyoStream], workers: int) -> None:
    """Raise one config error when the key is rejected or cannot read one of `streams`."""
    access = Access.probe(streams, workers)
    if not access.key_accepted:
        raise config_error(key_rejected_message())
    if access.unreadable:
        raise config_error(access.problem())
