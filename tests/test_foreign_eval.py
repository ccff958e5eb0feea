"""Smoke subset of the detection benchmark across export formats (the full one is `insight eval`).

The demo's planted frictions and the null scenario (with the noise of real data: a traffic dip, late
data, anonymous browsing before signup, web events without app versions) are generated once, then
rendered as GA4, wide CSV, Amplitude, Mixpanel and PostHog exports, imported with their event map
inferred, scanned, and scored against the ground truth translated into each rendering's names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.detection import SEGMENT, run
from data.renderers import FORMATS


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run(scales=(1.0,), users=20_000, workdir=Path(tmp_path_factory.mktemp("eval")), progress=lambda _: None,
               scenarios=("demo", "null"))


def runs(result: dict, scenario: str) -> dict[str, dict]:
    return {r["format"]: r for r in result["runs"] if r["scenario"] == scenario}


def test_every_rendering_finds_what_the_segment_rendering_finds(result: dict) -> None:
    demo = runs(result, "demo")
    assert set(demo) == {SEGMENT, *FORMATS}
    assert demo[SEGMENT]["missed"] == [], demo[SEGMENT]
    for fmt, r in demo.items():
        assert r["found"] == demo[SEGMENT]["found"], (fmt, r["missed"])
        assert r["warnings"] == [], (fmt, r["warnings"])
        assert r["disabled"] == [], (fmt, r["disabled"])  # every role is recognized in every vocabulary


def test_every_null_twin_is_nearly_clean(result: dict) -> None:
    for fmt, r in runs(result, "null").items():
        assert r["findings"] <= 1, (fmt, r["unmatched"])
        assert r["warnings"] == [], (fmt, r["warnings"])
