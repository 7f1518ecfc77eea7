"""The connector's streams, in the order discover lists them."""

from source_klaviyo.streams.audiences import (
    GlobalExclusions,
    ListExclusions,
    ListMemberships,
    Lists,
    SegmentMemberships,
    Segments,
)
from source_klaviyo.streams.base import KlaviyoStream
from source_klaviyo.streams.campaigns import CampaignMessages, CampaignsEmail, CampaignsPush, CampaignsSms, CampaignsV1
from source_klaviyo.streams.commerce import CatalogCategories, CatalogItems, CatalogVariants, CouponCodes, Coupons
from source_klaviyo.streams.context import ReadChoices, ReportContext, StreamContext
from source_klaviyo.streams.events import Events, EventsCustomDates
from source_klaviyo.streams.flows import FlowActions, FlowMessages, Flows
from source_klaviyo.streams.metric_aggregates import MetricAggregates
from source_klaviyo.streams.profiles import Profiles
from source_klaviyo.streams.reports import REPORT_CLASSES
from source_klaviyo.streams.resources import Forms, Metrics, TagGroups, Tags, Templates

STREAM_CLASSES = (
    CampaignsEmail,
    CampaignsSms,
    CampaignsPush,
    CampaignsV1,
    CampaignMessages,
    Templates,
    Profiles,
    Events,
    EventsCustomDates,
    Metrics,
    Lists,
    Segments,
    ListMemberships,
    SegmentMemberships,
    GlobalExclusions,
    ListExclusions,
    Flows,
    FlowActions,
    FlowMessages,
    Tags,
    TagGroups,
    Coupons,
    CouponCodes,
    Forms,
    CatalogItems,
    CatalogVariants,
    CatalogCategories,
    *REPORT_CLASSES,
    MetricAggregates,
)

__all__ = ["STREAM_CLASSES", "KlaviyoStream", "ReadChoices", "ReportContext", "StreamContext"]
