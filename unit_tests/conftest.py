from __future__ import annotations

import types
from collections.abc import Iterator

import backoff._sync
import pytest
from airbyte_cdk.sources.streams.http import rate_limiting

from unit_tests.openapi_contract import KlaviyoContract


@pytest.fixture(scope="session")
def contract() -> KlaviyoContract:
    return KlaviyoContract()


@pytest.fixture
def api(requests_mock, contract: KlaviyoContract) -> Iterator[object]:
    """requests-mock for a.klaviyo.com; every request the test sent is then held to Klaviyo's spec."""
    yield requests_mock
    for call in requests_mock.request_history:
        contract.validate(call._request)


@pytest.fixture(autouse=True)
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry waits are recorded instead of slept (the API budget's own short waits still run)."""
    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(sleep=sleeps.append)
    monkeypatch.setattr(backoff._sync, "time", fake_time)
    monkeypatch.setattr(rate_limiting, "time", fake_time)
    return sleeps
