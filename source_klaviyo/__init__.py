"""Airbyte source connector for Klaviyo."""

from source_klaviyo.source import SourceKlaviyo

__all__ = ["SourceKlaviyo"]
