"""Klaviyo's OpenAPI specs (the part this project uses, trimmed by tools/trim_openapi.py) and what they say a
request must be (`contract.py`): test support shared by the unit tests, which hold every request they mock to the
spec, and by the simulator in integration_tests, which refuses what Klaviyo would refuse."""
