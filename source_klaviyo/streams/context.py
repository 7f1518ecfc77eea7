"""What a stream is built from: the typed config, the account's API budget, the command's `now`, the read's slots,
and what the read decided before building its streams (the catalog's choices, the account's report context).

Every stream takes one `StreamContext`, so the source builds each stream complete, the same way, and a stream
reads what it needs from it instead of being set up afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from airbyte_cdk.sources.streams.call_rate import APIBudget

from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.planning import ReadSlots


@dataclass(frozen=True)
class ReportContext:
    """What every report of a read needs from the account: its timezone and, for campaign and flow reports,
    the conversion metric and the metrics of sent messages."""

    timezone: ZoneInfo
    conversion_metric_id: str | None = None
    sent_metric_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadChoices:
    """What a read's configured catalog and the account decide about its streams (the defaults: discover, check)."""

    profiles_cursor: str = "created"
    event_metric_ids: tuple[str | None, ...] = (None,)  # one events query per metric id; None: every metric
    incremental: frozenset[str] = frozenset()  # the streams read incrementally
    reports: ReportContext | None = None  # set when the read selects a report stream
    unreadable_includes: frozenset[str] = frozenset()  # include= names whose scope the key lacks: not asked for


@dataclass(frozen=True)
class StreamContext:
    config: KlaviyoConfig
    budget: APIBudget | None
    now: datetime
    slots: ReadSlots | None = None  # the read's `num_workers` slots, shared by every stream
    choices: ReadChoices = field(default_factory=ReadChoices)
