"""`insight bench` (benchmarks/speed.py) end to end on a small dataset: every measurement runs, every baseline's
step counts equal ours, every figure comes with its ratio. No wall time is asserted."""

from __future__ import annotations

from pathlib import Path

from benchmarks.speed import markdown, run


def test_the_speed_benchmark_measures_everything_against_its_baselines(tmp_path: Path) -> None:
    result = run(events=30_000, repeat=1, workdir=tmp_path, progress=lambda message: None, pandas_budget_s=120)
    scans = result["scan"]
    assert scans["cold"]["findings"] == scans["stored_facts"]["findings"]  # stored facts change no finding
    assert scans["again"]["findings"] == scans["cold"]["findings"]
    assert list((tmp_path / "state-demo-30000" / "facts" / "tables").glob("*.parquet"))
    funnel = result["funnel"]
    ours = funnel["ours"]["counts"]
    assert ours[0] > ours[-1] > 0
    for name in ("pandas_apply", "pandas_merge_asof", "chdb"):
        if funnel[name].get("counts"):
            assert funnel[name]["diff"] == [0] * len(ours), name
    assert result["ratios"]["scan_again_over_cold"] is not None
    assert result["ratios"]["pandas_apply_over_ours"] is not None
    table = markdown(result)
    assert "scan on the facts a first scan stored" in table and "pandas merge_asof / ours" in table
