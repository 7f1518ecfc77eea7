"""The trimmed copy of Klaviyo's specs in the repository still equals a fresh trim of the full specs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from klaviyo_spec.contract import SPEC_DIR
from tools.trim_openapi import REVISIONS, trimmed_text

ROOT = Path(__file__).resolve().parents[1]
FULL_SPECS = Path(os.environ.get("KLAVIYO_OPENAPI_DIR", ROOT.parent / "shared" / "klaviyo-openapi"))


@pytest.mark.ci_required
@pytest.mark.parametrize("revision", REVISIONS)
def test_the_trimmed_spec_equals_a_fresh_trim_of_klaviyos_spec(revision):
    if not (FULL_SPECS / f"openapi-{revision}.json").exists():
        pytest.skip(f"Klaviyo's full specs are not at {FULL_SPECS} (set KLAVIYO_OPENAPI_DIR)")
    assert (SPEC_DIR / f"openapi-{revision}.json").read_text() == trimmed_text(FULL_SPECS, revision)
