"""The CLI's process-wide settings (tuning.py) and their opt-out."""

from __future__ import annotations

import gc
import sys

import requests.models

from source_klaviyo.tuning import OPT_OUT_VARIABLE, tune_process


def interpreter() -> tuple:
    return gc.get_threshold(), sys.getswitchinterval(), requests.models.CONTENT_CHUNK_SIZE


def test_the_opt_out_leaves_the_interpreter_as_python_and_requests_set_it(monkeypatch):
    monkeypatch.setattr(requests.models, "CONTENT_CHUNK_SIZE", 10 * 1024)
    before = interpreter()
    monkeypatch.setenv(OPT_OUT_VARIABLE, "1")
    tune_process()
    assert interpreter() == before


def test_without_the_opt_out_the_collector_runs_rarely_and_bodies_are_read_in_large_chunks(monkeypatch):
    monkeypatch.setattr(requests.models, "CONTENT_CHUNK_SIZE", 10 * 1024)
    monkeypatch.delenv(OPT_OUT_VARIABLE, raising=False)
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_process()
        assert gc.get_threshold()[0] >= 100_000 and abs(sys.getswitchinterval() - 0.05) < 1e-6
        assert requests.models.CONTENT_CHUNK_SIZE == 1 << 16
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
