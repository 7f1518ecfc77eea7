"""The Reporting API's streams: Klaviyo's own numbers per campaign, flow, form and segment, as its UI shows them.

Each stream POSTs one report query per period (report_dates.py) in the
account's timezone, asking for every statistic the revision offers and no
filter, so one request answers for every campaign, flow, form or segment of the
period (an `any()` filter of 100 ids would only cost more requests). A row's id
hashes the report, its groupings, its date and the conversion metric, so the
re-read of the last `reporting_lookback_days` replaces rows rather than adding
them. The endpoints allow 1 request a second, 2 a minute and 225 a day: the
budget keeps the first two, the stream's state counts the day's requests
(state.ReportCursor) up to `rate_limit_share` of the 225, and a stream whose
day is spent, or that Klaviyo answers with its daily 429, ends successfully
with a warning naming the cap and when it resets (report_quota.py), and goes on
next sync.

Each request sends the `group_by` the stream declares as its columns: Klaviyo
fills only the groupings asked for, and its defaults differ from the columns
(form reports group by form_id alone when none is sent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import orjson
import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction

from source_klaviyo.clock import KLAVIYO_EPOCH, format_klaviyo_datetime
from source_klaviyo.errors import KlaviyoErrorHandler, json_body
from source_klaviyo.incoming_state import Resumes
from source_klaviyo.rate_limits import whole_share
from source_klaviyo.report_dates import Period, first_day, local_midnight, periods
from source_klaviyo.report_quota import QuotaExhausted, daily_limit_reached, klaviyo_quota, our_quota
from source_klaviyo.state import ReportCursor
from source_klaviyo.streams.base import KlaviyoStream
from source_klaviyo.streams.children import ParentCollection, archived_and_not
from source_klaviyo.streams.context import ReportContext

MESSAGE_STATISTICS = (
    "average_order_value", "bounce_rate", "bounced", "bounced_or_failed", "bounced_or_failed_rate", "click_rate",
    "click_to_open_rate", "clicks", "clicks_unique", "conversion_rate", "conversion_uniques", "conversion_value",
    "conversions", "delivered", "delivery_rate", "failed", "failed_rate", "message_segment_count_sum", "open_rate",
    "opens", "opens_unique", "recipients", "revenue_per_recipient", "spam_complaint_rate", "spam_complaints",
    "text_message_credit_usage_amount", "text_message_roi", "text_message_spend", "unsubscribe_rate",
    "unsubscribe_uniques", "unsubscribes",
)  # fmt: skip
FORM_STATISTICS = (
    "closed_form", "closed_form_uniques", "qualified_form", "qualified_form_uniques", "submit_rate", "submits",
    "submitted_form_step", "submitted_form_step_uniques", "viewed_form", "viewed_form_step",
    "viewed_form_step_uniques", "viewed_form_uniques",
)  # fmt: skip
SEGMENT_STATISTICS = ("members_added", "members_removed", "net_members_changed", "total_members")
# The metrics whose events are message sends (what makes an empty campaign or flow report suspicious).
SENT_METRICS = ("Received Email", "Received SMS", "Received Push")


class ReportErrorHandler(KlaviyoErrorHandler):
    """Lets the daily 429 through, so the stream stops with its rows and state instead of waiting a day."""

    def interpret_response(self, response_or_exception: Any = None) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response) and daily_limit_reached(response_or_exception):
            return ErrorResolution(ResponseAction.IGNORE)
        return super().interpret_response(response_or_exception)


class ReportStream(KlaviyoStream):
    """One report of the Reporting API, incremental on its date with a re-read window."""

    http_method = "POST"
    generated_schema = False
    kind: ClassVar[str]  # campaign, flow, form or segment
    series: ClassVar[bool]
    statistics: ClassVar[tuple[str, ...]]
    groupings: ClassVar[tuple[str, ...]]  # the row's identifying columns, sent as group_by where it is taken
    # Whether the report's request takes `group_by` (segment reports take none and group by segment_id).
    takes_group_by: ClassVar[bool] = True
    # The collection whose scope the report needs (and the filter that collection requires).
    collection: ClassVar[tuple[str, tuple[str, ...]]]
    # The day (in the account's timezone) Klaviyo's data for the report starts (segment reports: 2023-06-01).
    data_starts: ClassVar[date] = KLAVIYO_EPOCH.date()
    needs_report_context = True
    cursor: ReportCursor | None = None  # set by the engine (engine.py) from `concurrent_cursor`

    @property
    def cursor_field(self) -> str:
        return "date" if self.series else "start"

    @classmethod
    def needs_conversion_metric(cls) -> bool:
        return cls.kind in ("campaign", "flow")

    @property
    def report(self) -> ReportContext:
        """The account's timezone and metrics, which the read looked up (only a read builds report streams)."""
        assert self.context.choices.reports is not None, "a read looks the report context up first"
        return self.context.choices.reports

    @property
    def report_cursor(self) -> ReportCursor:
        """The stream's cursor, which the engine attaches from `concurrent_cursor` before the stream reads."""
        assert self.cursor is not None, "the engine attaches the cursor before the stream reads"
        return self.cursor

    def concurrent_cursor(self, state_manager: ConnectorStateManager, repository: MessageRepository) -> Cursor | None:
        return ReportCursor(self.name, self.cursor_field, state_manager, repository, self._now)

    def resumes(self) -> Resumes | None:
        return Resumes(self.cursor_field) if self.incremental else None

    def columns(self) -> tuple[str, ...]:
        return self.groupings

    # Stream caches its get_json_schema with functools.lru_cache, typed as a cache wrapper no method matches.
    def get_json_schema(self) -> Mapping[str, Any]:  # type: ignore[override]
        text = {"type": ["null", "string"]}
        properties: dict[str, Any] = {"id": {"type": "string"}, "timezone": text}
        if self.series:
            properties.update(date={**text, "format": "date-time"}, interval=text)
        else:
            properties.update(start={**text, "format": "date-time"}, end={**text, "format": "date-time"})
        if self.needs_conversion_metric():
            properties["conversion_metric_id"] = text
        properties.update({column: text for column in self.columns()})
        properties.update({statistic: {"type": ["null", "number"]} for statistic in self.statistics})
        return {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": properties}

    def get_error_handler(self) -> KlaviyoErrorHandler:
        return ReportErrorHandler(
            self.logger, self.name, self.scope, self._config.revision, self._retry_budget, **self.error_overrides()
        )

    def probe(self) -> int | None:
        """Every report request spends the day's quota, so the probe reads a page of the report's collection,
        which needs the same scope; the account (`accounts:read`, for its timezone) is probed once by the source."""
        name, filters = self.collection
        return ParentCollection(self, name, [filters]).probe()

    def body(self, period: Period) -> dict[str, Any]:
        attributes: dict[str, Any] = {"statistics": list(self.statistics), "timeframe": period.timeframe()}
        if self.series:
            attributes["interval"] = "daily"
        if self.needs_conversion_metric():
            attributes["conversion_metric_id"] = self.report.conversion_metric_id
        if self.takes_group_by:
            attributes["group_by"] = list(self.columns())
        return {"data": {"type": self.endpoint_name.removesuffix("s"), "attributes": attributes}}

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        """Period after period, oldest first, each period's state right after its rows; no read slot is held,
        since the endpoint's 2 requests a minute, not the read's workers, set the pace."""
        zone = self.report.timezone
        resume = self.report_cursor.resume_from(timedelta(days=self._config.reporting_lookback_days))
        start = first_day(resume or self.window_start or KLAVIYO_EPOCH, zone, yearly=not self.series)
        start = max(start, local_midnight(self.data_starts, zone))
        plan = list(periods(start, self._now, zone, yearly=not self.series))
        for index, period in enumerate(plan):
            try:
                rows = list(self._report(period))
            except QuotaExhausted as limit:
                self._stop(plan[index:], limit)
                return
            if not rows:
                self._warn_if_sent(period)
            yield from rows
            self.report_cursor.advance(period.end, finished=index == len(plan) - 1)

    def _report(self, period: Period) -> Iterator[MutableMapping[str, Any]]:
        url: str | None = self._join_url(self.url_base, self.path())
        published = self._endpoint.per_day
        assert published is not None, "every Reporting API endpoint has a daily quota (endpoints.py)"
        share = self._config.rate_limit_share
        per_day = whole_share(published, share)
        while url:
            if self.report_cursor.spent >= per_day:
                raise our_quota(per_day, f"/api/{self.endpoint_name}", self._now, published, share)
            _, response = self._http_client.send_request(
                "POST",
                url,
                request_kwargs=self.request_kwargs(),
                headers=self.request_headers(),
                # HttpClient types `data` as str or a mapping; requests sends these bytes as they are.
                data=orjson.dumps(self.body(period)),  # type: ignore[arg-type]
            )
            if daily_limit_reached(response):
                raise klaviyo_quota(response, self._now)
            self.report_cursor.spend()
            yield from self.rows(json_body(response), period)
            url = (self.next_page_token(response) or {}).get("next")

    def rows(self, document: Mapping[str, Any], period: Period) -> Iterator[MutableMapping[str, Any]]:
        attributes = document["data"]["attributes"]
        zone = self.report.timezone
        common: dict[str, Any] = {"timezone": zone.key}
        if self.needs_conversion_metric():
            common["conversion_metric_id"] = self.report.conversion_metric_id
        for result in attributes["results"]:
            groupings = {column: result["groupings"].get(column) for column in self.columns()}
            statistics = result.get("statistics") or {}
            if not self.series:
                yield self._row(
                    groupings, common, statistics, start=period.start.isoformat(), end=period.end.isoformat()
                )
                continue
            for index, moment in enumerate(attributes["date_times"]):
                local = datetime.fromisoformat(moment).astimezone(zone).isoformat()
                values = {name: _at(series, index) for name, series in statistics.items()}
                yield self._row(groupings, common, values, date=local, interval="daily")

    def _row(
        self, groupings: Mapping[str, Any], common: Mapping[str, Any], statistics: Mapping[str, Any], **when: str
    ) -> MutableMapping[str, Any]:
        moment = when.get("date") or when["start"]
        key = [
            self.name,
            self.report.conversion_metric_id or "",
            orjson.dumps(groupings, option=orjson.OPT_SORT_KEYS).decode(),
            moment,
        ]
        row: MutableMapping[str, Any] = {"id": hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:32]}
        row.update(when)
        row.update(common)
        row.update(groupings)
        row.update({name: statistics.get(name) for name in self.statistics})
        return row

    def _stop(self, left: list[Period], limit: QuotaExhausted) -> None:
        self.report_cursor.stopped(left[0].start)
        self.logger.warning(
            f"Stream {self.name} stopped at {limit.cap}. Report dates from {left[0].start.isoformat()} to "
            f"{left[-1].end.isoformat()} are left ({len(left)} request(s)). Every finished period and its state "
            f"are saved; the limit resets at {format_klaviyo_datetime(limit.resets_at)}, and a sync after that "
            "goes on from there."
        )

    def _warn_if_sent(self, period: Period) -> None:
        """An empty answer for a period in which the account sent messages is worth a warning, not silence."""
        if not self.needs_conversion_metric() or not self.sent_in(period):
            return
        self.logger.warning(
            f"Klaviyo's {self.endpoint_name} answered no rows for {period}, although the account sent "
            f"{'campaigns' if self.kind == 'campaign' else 'messages'} in that period. Klaviyo may still be "
            "processing them: the next sync reads the period again while it is within `reporting_lookback_days`."
        )

    def sent_in(self, period: Period) -> bool:
        """Whether the account sent messages in the period: a message-received event within it."""
        window = [
            f"greater-or-equal(datetime,{format_klaviyo_datetime(period.start)})",
            f"less-than(datetime,{format_klaviyo_datetime(period.end)})",
        ]
        partitions = [[f"equals(metric_id,'{metric}')", *window] for metric in self.report.sent_metric_ids]
        return _any_record(ParentCollection(self, "events", partitions))


class CampaignValuesReports(ReportStream):
    """Campaign messages by send date, one row per message and channel (and variation, when asked)."""

    name = "campaign_values_reports"
    endpoint_name = "campaign-values-reports"
    kind = "campaign"
    collection = ("campaigns", ("equals(messages.channel,'email')",))
    series = False
    statistics = MESSAGE_STATISTICS
    groupings = ("campaign_id", "campaign_message_id", "send_channel")

    def columns(self) -> tuple[str, ...]:
        variation = ("variation", "variation_name") if self._config.campaign_reports_by_variation else ()
        return (*self.groupings, *variation)

    def sent_in(self, period: Period) -> bool:
        """Whether a campaign (of any channel, archived or not) was scheduled to send in the period."""
        window = [
            f"greater-or-equal(scheduled_at,{format_klaviyo_datetime(period.start)})",
            f"less-than(scheduled_at,{format_klaviyo_datetime(period.end)})",
        ]
        partitions = [
            partition
            for channel in ("email", "sms", "mobile_push")
            for partition in archived_and_not(f"equals(messages.channel,'{channel}')", *window)
        ]
        return _any_record(ParentCollection(self, "campaigns", partitions))


class FlowReport(ReportStream):
    kind = "flow"
    collection = ("flows", ())
    statistics = MESSAGE_STATISTICS
    groupings = ("flow_id", "flow_message_id", "send_channel")


class FlowValuesReports(FlowReport):
    name = "flow_values_reports"
    endpoint_name = "flow-values-reports"
    series = False


class FlowSeriesReports(FlowReport):
    name = "flow_series_reports"
    endpoint_name = "flow-series-reports"
    series = True


class FormReport(ReportStream):
    kind = "form"
    collection = ("forms", ())
    statistics = FORM_STATISTICS
    groupings = ("form_id", "form_version_id")


class FormValuesReports(FormReport):
    name = "form_values_reports"
    endpoint_name = "form-values-reports"
    series = False


class FormSeriesReports(FormReport):
    name = "form_series_reports"
    endpoint_name = "form-series-reports"
    series = True


class SegmentReport(ReportStream):
    kind = "segment"
    collection = ("segments", ())
    statistics = SEGMENT_STATISTICS
    groupings = ("segment_id",)  # what Klaviyo groups segment reports by (the spec's response examples)
    takes_group_by = False
    data_starts = date(2023, 6, 1)


class SegmentValuesReports(SegmentReport):
    name = "segment_values_reports"
    endpoint_name = "segment-values-reports"
    series = False


class SegmentSeriesReports(SegmentReport):
    name = "segment_series_reports"
    endpoint_name = "segment-series-reports"
    series = True


REPORT_CLASSES = (
    CampaignValuesReports,
    FlowValuesReports,
    FlowSeriesReports,
    FormValuesReports,
    FormSeriesReports,
    SegmentValuesReports,
    SegmentSeriesReports,
)


def _at(values: Any, index: int) -> Any:
    return values[index] if isinstance(values, list) and index < len(values) else None


def _any_record(collection: ParentCollection) -> bool:
    return next(iter(collection.all_records()), None) is not None
