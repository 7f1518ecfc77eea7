"""`source-klaviyo` with its rate-limit budget sized to the simulator's scaled windows.

    python -m integration_tests.scaled_connector SCALE read --config ... --catalog ...

The simulator's `rate_limit_scale` shrinks Klaviyo's windows so that a small account fills them in seconds;
this connector is told the limits of that account (every endpoint's burst and steady limit scaled the way the
simulator scales them), so a test sees it keep to windows it can fill as it keeps to Klaviyo's. Everything
else, the share and headroom arithmetic included, is the connector's own.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from integration_tests.klaviyo_sim.server import scaled_limit
from source_klaviyo import rate_limits
from source_klaviyo.endpoints import Endpoint
from source_klaviyo.run import run


def scaled(endpoint: Endpoint, scale: float) -> Endpoint:
    return replace(
        endpoint,
        burst_per_second=scaled_limit(endpoint.burst_per_second, scale),
        steady_per_minute=scaled_limit(endpoint.steady_per_minute, scale),
    )


def main(scale: float, args: list[str]) -> None:
    rate_limits.ENDPOINTS = {
        revision: {name: scaled(endpoint, scale) for name, endpoint in table.items()}
        for revision, table in rate_limits.ENDPOINTS.items()
    }
    rate_limits.V1_CAMPAIGNS = scaled(rate_limits.V1_CAMPAIGNS, scale)
    burst, steady = rate_limits.PREDICTIVE_PROFILES_LIMITS
    rate_limits.PREDICTIVE_PROFILES_LIMITS = (scaled_limit(burst, scale), scaled_limit(steady, scale))
    run(args)


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])
