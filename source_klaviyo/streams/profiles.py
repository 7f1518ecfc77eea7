"""Profiles: incremental on `created` (or `updated`, chosen in the catalog), with subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airbyte_cdk.sources.streams.call_rate import APIBudget

from source_klaviyo.config import KlaviyoConfig
from source_klaviyo.endpoints import PREDICTIVE_FIELDS
from source_klaviyo.planning import ReadSlots
from source_klaviyo.streams.windowed import WindowedKlaviyoStream

PROFILE_CURSORS = ("created", "updated")


class Profiles(WindowedKlaviyoStream):
    """Profiles with their subscriptions; predictive analytics when the config asks for them.

    Klaviyo filters profiles' times only with greater-than and less-than.
    """

    name = "profiles"
    endpoint_name = "profiles"
    time_operators = ("greater-than", "less-than")
    catalog_defined_cursor = True

    def __init__(
        self,
        config: KlaviyoConfig,
        budget: APIBudget,
        now: datetime,
        slots: ReadSlots | None = None,
        cursor_field: str = "created",
    ) -> None:
        self._cursor_field = cursor_field
        super().__init__(config, budget, now, slots)

    @property
    def cursor_field(self) -> str:  # type: ignore[override]
        return self._cursor_field

    def extra_params(self) -> Mapping[str, Any]:
        fields = PREDICTIVE_FIELDS if self._config.profiles_predictive_analytics else "subscriptions"
        return {"sort": self.cursor_field, "additional-fields[profile]": fields}
