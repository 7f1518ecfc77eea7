"""Profiles: incremental on `created` (or `updated`, chosen in the catalog), with subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from source_klaviyo.endpoints import PREDICTIVE_FIELDS
from source_klaviyo.streams.context import StreamContext
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

    def __init__(self, context: StreamContext) -> None:
        self._cursor_field = context.choices.profiles_cursor
        super().__init__(context)

    @property
    def cursor_field(self) -> str:
        return self._cursor_field

    def extra_params(self) -> Mapping[str, Any]:
        fields = PREDICTIVE_FIELDS if self._config.profiles_predictive_analytics else "subscriptions"
        return {"sort": self.cursor_field, "additional-fields[profile]": fields}
