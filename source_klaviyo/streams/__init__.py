"""The connector's streams, in the order discover lists them."""

from source_klaviyo.streams.base import IncrementalKlaviyoStream, KlaviyoStream
from source_klaviyo.streams.campaigns import CampaignsEmail, CampaignsSms, CampaignsV1
from source_klaviyo.streams.events import Events, EventsCustomDates
from source_klaviyo.streams.metric_aggregates import MetricAggregates
from source_klaviyo.streams.profiles import Profiles
from source_klaviyo.streams.resources import Flows, Lists, Metrics, Segments, Templates
from source_klaviyo.streams.windowed import WindowedKlaviyoStream

STREAM_CLASSES = (
    CampaignsEmail,
    CampaignsSms,
    CampaignsV1,
    Templates,
    Profiles,
    Events,
    EventsCustomDates,
    Metrics,
    Lists,
    Segments,
    Flows,
    MetricAggregates,
)

__all__ = [
    "STREAM_CLASSES",
    "Events",
    "EventsCustomDates",
    "IncrementalKlaviyoStream",
    "KlaviyoStream",
    "MetricAggregates",
    "Metrics",
    "Profiles",
    "WindowedKlaviyoStream",
]
