"""A local Klaviyo API: Klaviyo's endpoints, rules and faults over deterministic data."""

from integration_tests.klaviyo_sim.data import Dataset, Sizes
from integration_tests.klaviyo_sim.server import FULL_ACCESS_KEY, Faults, Simulator, key_without

__all__ = ["FULL_ACCESS_KEY", "Dataset", "Faults", "Simulator", "Sizes", "key_without"]
