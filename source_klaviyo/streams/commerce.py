"""Coupons and their codes, and the product catalog: items, variants, categories."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from source_klaviyo.planning import PARENT
from source_klaviyo.streams.base import KlaviyoStream
from source_klaviyo.streams.children import PROBE_PARENT, ChildStream, ParentCollection


class Coupons(KlaviyoStream):
    name = "coupons"
    endpoint_name = "coupons"


class CouponCodes(ChildStream):
    """Every coupon's codes: Klaviyo lists codes only for a coupon (or a profile) named in the filter."""

    name = "coupon_codes"
    endpoint_name = "coupon-codes"
    parent_field = "coupon_id"
    relationships = {"coupon": "coupon_id", "profile": "profile_id"}

    def parents(self) -> Iterator[str]:
        return ParentCollection(self, "coupons").ids()

    def slice_filters(self, stream_slice: Mapping[str, Any] | None) -> list[str]:
        return [f"equals(coupon.id,'{(stream_slice or {}).get(PARENT, PROBE_PARENT)}')"]


class CatalogItems(KlaviyoStream):
    name = "catalog_items"
    endpoint_name = "catalog-items"


class CatalogVariants(KlaviyoStream):
    name = "catalog_variants"
    endpoint_name = "catalog-variants"
    relationships = {"item": "item_id"}


class CatalogCategories(KlaviyoStream):
    name = "catalog_categories"
    endpoint_name = "catalog-categories"
