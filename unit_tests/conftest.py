from __future__ import annotations

import time
import types
from collections.abc import Iterator

import pytest

from source_klaviyo import errors, windows
from source_klaviyo import source as source_module
from source_klaviyo.endpoints import INCLUDE_ENDPOINTS, REVISIONS, endpoint
from source_klaviyo.errors import CONNECT_TIMEOUT
from source_klaviyo.rate_limits import KlaviyoAPIBudget
from unit_tests.klaviyo_mock import url
from unit_tests.openapi_contract import KlaviyoContract


@pytest.fixture(scope="session")
def contract() -> KlaviyoContract:
    return KlaviyoContract()


@pytest.fixture
def api(requests_mock, contract: KlaviyoContract) -> Iterator[object]:
    """requests-mock for a.klaviyo.com; every request the test sent is then held to Klaviyo's spec.

    Each must also carry a connect and a read timeout: without them one stalled socket hangs a sync. The
    resources streams include (tags, metrics) answer an empty page unless the test serves them: a read asks for
    their scopes first (preflight.py).
    """
    for revision in REVISIONS:
        for name in INCLUDE_ENDPOINTS.values():
            if "{id}" not in name and endpoint(revision, name):
                requests_mock.get(url(name, revision), json={"data": [], "links": {}})
    yield requests_mock
    for call in requests_mock.request_history:
        contract.validate(call._request)
        connect, read = call.timeout
        assert connect == CONNECT_TIMEOUT and 0 < read <= 600, (call.url, call.timeout)


@pytest.fixture(autouse=True)
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry waits are recorded instead of slept (the API budget's own short waits still run)."""
    sleeps: list[float] = []
    monkeypatch.setattr(errors, "time", types.SimpleNamespace(sleep=sleeps.append, monotonic=time.monotonic))
    return sleeps


@pytest.fixture(autouse=True)
def unthrottled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connector's API budget sends at once here: its waits would only make the suite slow (a second for each
    test that sends four flows requests, 60 s in all). test_rate_limits.py tests the real budget, which it builds
    itself; the integration tests run it against the simulator at Klaviyo's limits."""
    monkeypatch.setattr(source_module, "build_budget", lambda *_: KlaviyoAPIBudget(policies=[]))


@pytest.fixture
def one_window_per_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """A windowed stream's first cut leaves each range whole here, so a test sees the ranges a read chose
    as its requests' filters (test_windows.py tests the cuts and hand-offs)."""
    monkeypatch.setattr(windows, "MIN_FIRST_WINDOW_SECONDS", 10**12)
