"""The connector's streams, in the order discover lists them."""

from source_klaviyo.streams.base import IncrementalKlaviyoStream, KlaviyoStream
from source_klaviyo.streams.campaigns import CampaignsEmail, CampaignsSms
from source_klaviyo.streams.resources import Flows, Lists, Metrics, Segments, Templates

STREAM_CLASSES = (CampaignsEmail, CampaignsSms, Templates, Metrics, Lists, Segments, Flows)

__all__ = ["STREAM_CLASSES", "IncrementalKlaviyoStream", "KlaviyoStream"]
