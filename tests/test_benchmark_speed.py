"""The speed suite's result file: its keys, and ratios and cache sizes that follow from what it measured.

No timing is asserted (the machine is noisy); the numbers must only be consistent with each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sec_mllm.experiments.speed import KS, N, SpeedSettings, plot, print_tables, run_speed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result():
    settings = SpeedSettings(
        lm_width=64,
        lm_layers=2,
        lm_heads=2,
        vision_width=64,
        vision_layers=1,
        text_tokens=8,
        train_batch=1,
        warmup=0,
        repeats=1,
        projector_repeats=1,
    )
    return run_speed(settings)


def test_result_has_the_documented_keys(result):
    assert set(result["projector_ms"]) == {"sec", "sec_plain", "kmeans", "tome", "avgpool"}
    for row in result["projector_ms"].values():
        assert set(row) == {str(k) for k in KS} and all(v > 0 for v in row.values())
    assert set(result["prefill"]) == {str(N)} | {str(k) for k in KS}
    assert set(result["train_samples_per_s"]) == {str(N)} | {str(k) for k in KS}
    for row in result["prefill"].values():
        assert {"ms", "speedup", "lm_only_speedup", "ideal_speedup", "kv_cache_bytes", "peak_memory_mb"} <= set(row)


def test_ratios_and_cache_sizes_follow_from_the_measurements(result):
    prefill, text = result["prefill"], 8
    for key, row in prefill.items():
        k = int(key)
        assert row["sequence_length"] == k + text
        assert row["speedup"] == pytest.approx(prefill[str(N)]["ms"] / row["ms"])
        assert row["lm_only_speedup"] == pytest.approx(prefill[str(N)]["lm_only_ms"] / row["lm_only_ms"])
        assert row["ideal_speedup"] == pytest.approx((N + text) / (k + text))
        assert row["fraction_of_lm_speedup"] == pytest.approx(row["speedup"] / row["lm_only_speedup"])
        # keys and values, 2 layers, batch 1, float32, width 64 (= heads x head_dim)
        assert row["kv_cache_bytes"] == 2 * 2 * (k + text) * 64 * 4
    for key, ratio in result["kmeans_over_sec_plain"].items():
        assert ratio == pytest.approx(result["projector_ms"]["kmeans"][key] / result["projector_ms"]["sec_plain"][key])
    assert all(0 < share < 1 for key, share in result["projector_share_of_forward"].items() if key != str(N))


def test_prefill_plot_is_written(result, tmp_path):
    plot(result, tmp_path / "prefill.png")
    assert (tmp_path / "prefill.png").stat().st_size > 10_000
    print_tables(result)
