"""What the account holds that a command needs, each looked up once: its metrics (the ids `event_metrics`
names, the conversion metric campaign and flow reports count) and its timezone (Klaviyo's report days are its
days). discover and check ask within the shortest retry budget: they must not wait out an outage."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo.config import MIN_RETRY_BUDGET, KlaviyoConfig
from source_klaviyo.errors import config_error, missing_scopes_message
from source_klaviyo.streams import STREAM_CLASSES, KlaviyoStream, ReportContext, StreamContext
from source_klaviyo.streams.reports import SENT_METRICS
from source_klaviyo.streams.resources import Accounts, Metrics

logger = logging.getLogger("airbyte")


@dataclass(frozen=True)
class ConversionMetric:
    """The metric campaign and flow reports count conversions of, or why there is none."""

    metric_id: str | None
    why_none: str = ""
    sent_metric_ids: tuple[str, ...] = ()


class Account:
    """The account a command reads, asked through the command's budget (`context`) and remembered."""

    def __init__(self, context: StreamContext) -> None:
        self._context = context
        self._conversion: ConversionMetric | None = None
        self._known: list[tuple[str, str | None]] | None = None
        self._metrics_unreachable = False  # discover or check could not reach the metrics: they do not ask again

    @property
    def config(self) -> KlaviyoConfig:
        return self._context.config

    def offers(self, stream_class: type[KlaviyoStream]) -> bool:
        """Whether discover offers the stream: campaign and flow reports only when there is a conversion metric to
        count (or Klaviyo cannot be reached to tell: a read then looks again)."""
        if not stream_class.needs_conversion_metric() or self.config.conversion_metric or self._metrics_unreachable:
            return True
        try:
            return self.conversion_metric(quick=True).metric_id is not None
        except AirbyteTracedException as error:
            if error.failure_type == FailureType.config_error:
                raise
            self._metrics_unreachable = True
            logger.warning(
                f"Could not look up the account's metrics ({error.message}); the campaign and flow reports "
                "are offered, and a read checks their conversion metric."
            )
            return True

    def reports_left_out(self) -> str:
        """Why campaign and flow reports are not offered ("" when they are, or the revision has none)."""
        left_out = [
            cls.name
            for cls in STREAM_CLASSES
            if cls.needs_conversion_metric() and not cls.missing_setting(self.config) and not self.offers(cls)
        ]
        if not left_out:
            return ""
        return (
            f"{', '.join(left_out)} are not offered: {self.conversion_metric().why_none} "
            "Set `conversion_metric` to the metric they count as a conversion (its id or name)."
        )

    def conversion_metric(self, quick: bool = False) -> ConversionMetric:
        """`conversion_metric` (a metric id or name), else the account's "Placed Order"; read once per command.
        `quick`: retried for the shortest budget only."""
        if self._conversion is not None:
            return self._conversion
        known = self._known_metrics(quick)
        if known is None:
            self._conversion = ConversionMetric(
                None, f"the key cannot read metrics (it needs {self._metrics().scope})."
            )
            return self._conversion
        wanted = self.config.conversion_metric or "Placed Order"
        matching = _matching(known, wanted)
        sent = tuple(metric_id for metric_id, name in known if name in SENT_METRICS)
        if matching:
            if len(matching) > 1:
                logger.info(f"Reports count conversions of {matching[0]}, the first of the metrics named {wanted!r}.")
            self._conversion = ConversionMetric(matching[0], "", sent)
        elif self.config.conversion_metric:
            raise config_error(
                f"`conversion_metric` is {wanted!r}, which is no metric id or name of this account. "
                f"Metrics: {_names(known)}."
            )
        else:
            self._conversion = ConversionMetric(None, 'the account has no "Placed Order" metric.', sent)
        return self._conversion

    def event_metric_ids(self) -> tuple[str, ...]:
        """The ids `event_metrics` names: each entry is a metric id or a metric name (all metrics of that name)."""
        known = self._known_metrics()
        if known is None:
            raise config_error(
                missing_scopes_message({"event_metrics (to look up metric names)": self._metrics().scope})
            )
        ids: list[str] = []
        for wanted in self.config.event_metrics:
            matching = _matching(known, wanted)
            if not matching:
                raise config_error(
                    f"`event_metrics` lists {wanted!r}, which is no metric id or name of this account. "
                    f"Metrics: {_names(known)}."
                )
            ids += [metric_id for metric_id in matching if metric_id not in ids]
        return tuple(ids)

    def timezone_unreadable(self) -> str:
        """Why the reports cannot learn the account's timezone ("" when they can)."""
        accounts = Accounts(self._context)
        if accounts.probe() not in (401, 403):
            return ""
        return missing_scopes_message({"the report streams (for the account's timezone)": accounts.scope})

    def report_context(self, reports: Iterable[type[KlaviyoStream]]) -> ReportContext:
        """The account's timezone and, when campaign or flow reports are among `reports`, the conversion metric and
        the metrics of sent messages."""
        unreadable = self.timezone_unreadable()
        if unreadable:
            raise config_error(unreadable)
        account = next(iter(Accounts(self._context).read_records(SyncMode.full_refresh)), {})
        try:
            zone = ZoneInfo(account.get("timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning(f"The account's timezone {account.get('timezone')!r} is unknown here; reports use UTC.")
            zone = ZoneInfo("UTC")
        counting = [report.name for report in reports if report.needs_conversion_metric()]
        if not counting:
            return ReportContext(zone)
        conversion = self.conversion_metric()
        if conversion.metric_id is None:
            raise config_error(
                f"The catalog selects {', '.join(counting)}, which need a conversion metric: {conversion.why_none} "
                "Set `conversion_metric`, or refresh the source schema and deselect them."
            )
        return ReportContext(zone, conversion.metric_id, conversion.sent_metric_ids)

    def _known_metrics(self, quick: bool = False) -> list[tuple[str, str | None]] | None:
        """The account's metrics as (id, name), listed once per command; None when the key cannot read them.
        `quick`: retried for the shortest budget only."""
        if self._known is None:
            metrics = self._metrics(quick)
            if metrics.probe() in (401, 403):
                return None
            self._known = [(record["id"], record.get("name")) for record in metrics.read_records(SyncMode.full_refresh)]
        return self._known

    def _metrics(self, quick: bool = False) -> Metrics:
        config = self.config.model_copy(update={"retry_budget_seconds": MIN_RETRY_BUDGET}) if quick else self.config
        return Metrics(StreamContext(config, self._context.budget, self._context.now))


def _matching(known: list[tuple[str, str | None]], wanted: str) -> list[str]:
    return [metric_id for metric_id, name in known if wanted in (metric_id, name)]


def _names(known: list[tuple[str, str | None]]) -> str:
    return ", ".join(sorted({name for _, name in known if name})[:40])
