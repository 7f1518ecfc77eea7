"""Settings for every test under this folder."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ci_required: must run in CI (CI=true): skipping it there fails it, e.g. the container tests"
    )
    config.addinivalue_line(
        "markers",
        "realtime: holds the connector to Klaviyo's rate limits on the clock; scripts/test.sh runs it at full "
        "priority beside the other tests",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    """In CI a skipped `ci_required` test counts as failed: locally it may skip (no engine), there it must run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and item.get_closest_marker("ci_required"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where this test must run: {report.longrepr}"
