"""The connector's typed configuration and the backfill window policy.

The raw config is validated once per command, when the CDK hands it to the
source, into `KlaviyoConfig`; everything below `source.py` works with the typed
model. Types are strict (no string or bool is read as a number, no number as a
bool) and every number and date is bounded, so no value can overflow a window.
A config the model rejects becomes one config error that names each field and
says what to fix; a key the model does not know gets a warning (a config
written by another version still runs). A config of the official Airbyte
connector runs too: its settings are read as ours, each with a log line
(`current_form`), but are not offered in our spec.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from source_klaviyo.aggregate_query import AggregateQuery, parse_queries
from source_klaviyo.clock import DATETIME_FORMAT, EARLIEST_DATE, LATEST_DATE
from source_klaviyo.endpoints import DEFAULT_REVISION, KLAVIYO_API_URL, REPORTS

logger = logging.getLogger("airbyte")
_DATETIME_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")

# First-sync window per stream, in days; None reads all history. Users override
# it per stream with `backfill_window_days` (0 there also means all history).
BACKFILL_POLICY_DAYS: Mapping[str, int | None] = {
    "events": 30,
    "profiles": 730,
    "templates": 730,
    "lists": 730,
    "segments": 730,
    "campaigns_email": None,
    "campaigns_sms": None,
    "metrics": None,
    "flows": None,
    **{f"{kind}_{report}_reports": 365 for kind, report in REPORTS},
}
DEFAULT_REPORTING_LOOKBACK_DAYS = 30
MAX_REPORTING_LOOKBACK_DAYS = 90

DEFAULT_NUM_WORKERS = 10
MIN_RETRY_BUDGET = 10  # seconds
# check answers within about a minute when Klaviyo cannot be reached (a person waits on it in the form).
CHECK_RETRY_BUDGET = 60  # seconds
# Klaviyo events can arrive after their datetime (integrations catching up, imports);
# an incremental events sync re-reads this much before its state. See the README.
DEFAULT_EVENT_LOOKBACK_HOURS = 24
MAX_EVENT_LOOKBACK_HOURS = 720
MAX_NUM_WORKERS = 50
# A backfill window longer than this reaches before Klaviyo existed; the bound keeps `now - window` in range.
MAX_WINDOW_DAYS = 36_500
# The least share of Klaviyo's rate limits a sync may be held to: below it a first sync of a large account takes days.
MIN_RATE_LIMIT_SHARE = 0.1
# Shorter strings cannot be a Klaviyo key (pk_ and 34 characters); masking them would garble the message.
MIN_MASKED_LENGTH = 8


def parse_datetime(value: str) -> datetime:
    """Parse the config's `YYYY-MM-DDTHH:MM:SSZ` into an aware UTC datetime between 1970 and 2100."""
    if not isinstance(value, str) or not _DATETIME_PATTERN.fullmatch(value):
        raise ValueError(f"must look like 2024-01-31T00:00:00Z (UTC, no fractions), got {value!r}")
    try:
        parsed = datetime.strptime(value, DATETIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"is not a real date and time: {value!r}") from None
    if not EARLIEST_DATE <= parsed < LATEST_DATE:
        raise ValueError(f"must lie between 1970 and 2100, got {value!r}")
    return parsed


class BackfillWindows(BaseModel):
    """Per-stream overrides of BACKFILL_POLICY_DAYS for streams Klaviyo can filter by time (unknown keys: a warning)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    events: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    profiles: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    templates: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    lists: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    segments: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    campaigns_email: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    campaigns_sms: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    flows: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    campaign_values_reports: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    flow_values_reports: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    flow_series_reports: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    form_values_reports: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    form_series_reports: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    segment_values_reports: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)
    segment_series_reports: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS)


class CustomDates(BaseModel):
    """The range events_custom_dates reads: after `start`, up to and including `end`."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    start: datetime
    end: datetime

    @field_validator("start", "end", mode="before")
    @classmethod
    def _datetime(cls, value: Any) -> datetime:
        return parse_datetime(value)

    @model_validator(mode="after")
    def _ordered(self) -> CustomDates:
        if self.end <= self.start:
            raise ValueError("must have `end` after `start`")
        return self


class KlaviyoConfig(BaseModel):
    # Unknown top-level keys are kept aside (and warned about by parse_config), not refused.
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    api_key: SecretStr
    start_date: datetime | None = None
    revision: Literal["2026-07-15", "2023-10-15"] = DEFAULT_REVISION
    backfill_window_days: BackfillWindows = BackfillWindows()
    num_workers: int = Field(default=DEFAULT_NUM_WORKERS, ge=1, le=MAX_NUM_WORKERS)
    api_url: str = KLAVIYO_API_URL
    event_metrics: list[str] = Field(default_factory=list)
    event_lookback_hours: int = Field(default=DEFAULT_EVENT_LOOKBACK_HOURS, ge=0, le=MAX_EVENT_LOOKBACK_HOURS)
    events_custom_dates: CustomDates | None = None
    profiles_predictive_analytics: bool = False
    legacy_v1_campaigns: bool = False
    metric_aggregates: tuple[AggregateQuery, ...] = ()
    conversion_metric: str | None = None
    reporting_lookback_days: int = Field(default=DEFAULT_REPORTING_LOOKBACK_DAYS, ge=0, le=MAX_REPORTING_LOOKBACK_DAYS)
    campaign_reports_by_variation: bool = False
    request_timeout_seconds: int = Field(default=60, ge=1, le=600)
    retry_budget_seconds: int = Field(default=600, ge=MIN_RETRY_BUDGET, le=3600)
    # The part of each of Klaviyo's per-account windows (burst, steady, the Reporting API's day) this connector
    # takes; the account's other apps share the rest (rate_limits.py says how it combines with the headroom).
    rate_limit_share: float = 1.0

    @field_validator("api_key")
    @classmethod
    def _private_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key or any(char.isspace() for char in key):
            raise ValueError("is empty or contains whitespace; paste the key exactly as Klaviyo shows it")
        if not key.startswith("pk_") or key == "pk_":
            raise ValueError(
                "is not a Klaviyo private API key: private keys start with pk_ "
                "(create one in Klaviyo under Settings > API keys)"
            )
        return value

    @field_validator("start_date", mode="before")
    @classmethod
    def _start_date(cls, value: Any, info: ValidationInfo) -> datetime | None:
        if value is None or value == "":
            return None
        parsed = parse_datetime(value)
        if parsed > _validation_now(info):
            raise ValueError(f"is in the future ({value}); nothing would be read")
        return parsed

    @field_validator("metric_aggregates", mode="before")
    @classmethod
    def _queries(cls, value: Any, info: ValidationInfo) -> tuple[AggregateQuery, ...]:
        if value is None or value == "":
            return ()
        return parse_queries(value, info.data.get("revision", DEFAULT_REVISION), _validation_now(info))

    @field_validator("conversion_metric", mode="before")
    @classmethod
    def _conversion_metric(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("must be a metric id or name, as text")
        return value.strip()

    @field_validator("event_metrics")
    @classmethod
    def _metric_names(cls, value: list[str]) -> list[str]:
        if any(not isinstance(item, str) or not item.strip() for item in value):
            raise ValueError("must list metric ids or names, none of them empty")
        return list(dict.fromkeys(item.strip() for item in value))

    @field_validator("rate_limit_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if not MIN_RATE_LIMIT_SHARE <= value <= 1:
            raise ValueError(
                f"must be from {MIN_RATE_LIMIT_SHARE} to 1.0, got {value}: the share of each of Klaviyo's rate "
                "limits this connector uses (1.0 all of it; 0.5 leaves half to the account's other apps)"
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _trusted_host(cls, value: str) -> str:
        """Only Klaviyo itself or this machine: the key travels with every request."""
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
        klaviyo = parts.scheme == "https" and (host == "klaviyo.com" or host.endswith(".klaviyo.com"))
        local = parts.scheme in ("http", "https") and _is_loopback(host)
        if not (klaviyo or local) or parts.username or parts.password:
            raise ValueError(
                "must be https://<host>.klaviyo.com, or a loopback URL such as http://127.0.0.1:8765 for the "
                "local simulator; the API key is never sent anywhere else"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be a bare origin such as https://a.klaviyo.com, without a path or query")
        return f"{parts.scheme}://{parts.netloc}/"

    def backfill_start(self, stream: str, now: datetime) -> datetime | None:
        """Earliest time a first sync of `stream` reads: the later of (now - window) and start_date.

        Streams outside the policy (events_custom_dates reads its own range) have no window.
        """
        days = getattr(self.backfill_window_days, stream, None)
        if days is None:
            days = BACKFILL_POLICY_DAYS.get(stream)
        window_start = now - timedelta(days=days) if days else None
        bounds = [bound for bound in (window_start, self.start_date) if bound is not None]
        return max(bounds) if bounds else None


def _validation_now(info: ValidationInfo) -> datetime:
    """The `now` the config is validated as of: parse_config, the only place a config is validated, passes it."""
    assert info.context is not None, "KlaviyoConfig is validated by parse_config, which passes `now` as context"
    now: datetime = info.context["now"]
    return now


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_config(raw: Mapping[str, Any], now: datetime) -> KlaviyoConfig:
    """Validate the raw config as of `now`; any problem becomes one config error naming every bad field."""
    form = current_form(raw)
    try:
        config = KlaviyoConfig.model_validate(form.config, context={"now": now})
    except ValidationError as error:
        problems = "; ".join(_describe(problem, form.given_as) for problem in error.errors())
        key = raw.get("api_key") if isinstance(raw, Mapping) else None
        if isinstance(key, str) and len(key.strip()) >= MIN_MASKED_LENGTH:
            problems = problems.replace(key, "****")  # in case it was pasted into a field whose error quotes it
        raise AirbyteTracedException(
            message=f"Invalid configuration: {problems}.",
            internal_message=f"Config validation failed: {problems}",
            failure_type=FailureType.config_error,
        ) from None
    # Registered once valid: a junk value such as "t" would otherwise be masked out of every message.
    update_secrets([config.api_key.get_secret_value()])
    for level, line in form.lines:
        logger.log(level, line)
    unknown = unknown_settings(config)
    if unknown:
        logger.warning(
            f"The config has settings this connector does not know: {', '.join(unknown)}. "
            "They are ignored: check their spelling, or whether they belong to another version."
        )
    return config


def in_current_form(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The config as the current spec describes it (see `current_form`)."""
    return current_form(raw).config


@dataclass(frozen=True)
class CurrentForm:
    """A config as the current spec describes it, and how it got there: `given_as` names the official setting each
    of ours was given as (errors name both), `lines` say what was read how, logged once the config is valid."""

    config: Mapping[str, Any]
    given_as: Mapping[str, str]
    lines: tuple[tuple[int, str], ...]


def current_form(raw: Mapping[str, Any]) -> CurrentForm:
    """`raw` as the current spec describes it: a metric_aggregates query given as an object or a list (as older
    versions took it) becomes the JSON text the spec's form field holds, and each of the official connector's
    settings becomes ours (OFFICIAL_SETTINGS), unless ours is set too. An official value of the wrong type is
    handed on as it is, so that ours refuses it, naming the official setting."""
    config = dict(raw)
    queries = config.get("metric_aggregates")
    if isinstance(queries, (dict, list)):
        config["metric_aggregates"] = json.dumps(queries)
    given_as: dict[str, str] = {}
    lines: list[tuple[int, str]] = []
    for official, (ours, translate) in OFFICIAL_SETTINGS.items():
        if official not in config:
            continue
        given = config.pop(official)
        said = f"The official connector's setting {official}={json.dumps(given)}"
        if ours in config:
            lines.append((logging.INFO, f"{said} is not used: {ours} is set too, and wins."))
            continue
        translation = translate(given)
        if translation.value is None:
            lines.append((logging.INFO, f"{said} sets nothing here: {ours} keeps its default."))
        else:
            config[ours], given_as[ours] = translation.value, official
            lines.append((logging.INFO, f"{said} is read as {ours}={json.dumps(translation.value)}."))
        if translation.loss:
            lines.append((logging.WARNING, f"{said}: {translation.loss}."))
    return CurrentForm(config, given_as, tuple(lines))


@dataclass(frozen=True)
class Translation:
    """An official setting's value as ours: `value` (None: ours keeps its default), and `loss`, what of the
    official meaning does not carry over, if anything (a warning names it)."""

    value: Any
    loss: str = ""


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _listed(text: str) -> list[str]:
    """The items of the official connector's comma-separated lists, in order, without blanks and repeats."""
    return list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))


def _predictive_analytics(disabled: Any) -> Translation:
    """disable_fetching_predictive_analytics: the official profiles carry predictive analytics unless it is true."""
    return Translation(not disabled if isinstance(disabled, bool) else disabled)


def _event_metrics(ids: Any) -> Translation:
    """event_metric_ids (official, since March 2026): the metrics whose events are read, comma-separated; empty:
    all of them, as ours."""
    return Translation((_listed(ids) or None) if isinstance(ids, str) else ids)


def _conversion_metric(ids: Any) -> Translation:
    """metric_ids: the conversion metrics the official report streams are each read for, comma-separated; empty:
    every metric of the account. Ours count one conversion metric per report."""
    if not isinstance(ids, str):
        return Translation(ids)
    listed = _listed(ids)
    if not listed:
        return Translation(None, "each report was read for every metric there; here it counts one conversion metric")
    first, *others = listed
    loss = f"each report here counts one conversion metric, {first}; {', '.join(others)} not" if others else ""
    return Translation(first, loss)


def _look_back(per_day: int, maximum: int, unit: str) -> Callable[[Any], Translation]:
    """An official look-back in days (lookback_window: events_detailed; reporting_lookback_window, 3.x:
    flow_series_reports) as ours, in `unit`, `per_day` of them a day, at most `maximum`. 0, the official default
    (nothing is read again), leaves ours at its default: Klaviyo's late events and revised conversions are the
    reason ours exist, and ours set to 0 still turns them off."""

    def translate(days: Any) -> Translation:
        if not _is_count(days):
            return Translation(days)
        if days == 0:
            return Translation(None)
        if days * per_day > maximum:
            return Translation(maximum, f"this connector reads at most {maximum} {unit} again, so {maximum}")
        return Translation(days * per_day)

    return translate


# The official connector's settings that mean something here (its spec, 2.x and 3.x): our setting each becomes,
# and how its value becomes ours. Its api_key, start_date and num_workers are ours: same name, same meaning.
OFFICIAL_SETTINGS: Mapping[str, tuple[str, Callable[[Any], Translation]]] = {
    "disable_fetching_predictive_analytics": ("profiles_predictive_analytics", _predictive_analytics),
    "lookback_window": ("event_lookback_hours", _look_back(24, MAX_EVENT_LOOKBACK_HOURS, "hours")),
    "event_metric_ids": ("event_metrics", _event_metrics),
    "metric_ids": ("conversion_metric", _conversion_metric),
    "reporting_lookback_window": ("reporting_lookback_days", _look_back(1, MAX_REPORTING_LOOKBACK_DAYS, "days")),
}


def unknown_settings(model: BaseModel, prefix: str = "") -> list[str]:
    """The keys of the config, nested ones as `parent.key`, that no field of the model reads."""
    names = [f"{prefix}{name}" for name in sorted(model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            names += unknown_settings(value, f"{prefix}{name}.")
    return names


def _describe(problem: Mapping[str, Any], given_as: Mapping[str, str]) -> str:
    field = ".".join(str(part) for part in problem["loc"]) or "config"
    official = given_as.get(str(problem["loc"][0])) if problem["loc"] else None
    field = f"`{field}` (given as the official connector's `{official}`)" if official else f"`{field}`"
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "missing":
        message = "is required"
    elif not message.startswith(("is ", "must ")):
        message = f"is invalid: {message}"
    return f"{field} {message}"
