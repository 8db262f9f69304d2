"""The speed suite's result file: its keys, and ratios and cache sizes that follow from what it measured.

No timing is asserted (the machine is noisy); the numbers must only be consistent with each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sec_mllm.experiments.speed import (
    KS,
    PROFILE_REGIONS,
    N,
    SpeedSettings,
    build_parser,
    command_line,
    plot,
    print_tables,
    run_speed,
    settings_from_args,
    train_profile,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
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


@pytest.fixture(scope="module")
def result():
    return run_speed(SpeedSettings(batches=(1, 2), **TINY))


def test_result_has_the_documented_keys(result):
    assert set(result["projector_ms"]) == {"sec", "sec_plain", "kmeans", "tome", "avgpool"}
    for row in result["projector_ms"].values():
        assert set(row) == {str(k) for k in KS} and all(v > 0 for v in row.values())
    assert set(result["prefill"]) == set(result["tower_ms"]) == set(result["projector_share"]) == {"1", "2"}
    for rows in result["prefill"].values():
        assert set(rows) == {str(N)} | {str(k) for k in KS}
        for row in rows.values():
            assert {"ms", "speedup", "lm_only_speedup", "ideal_speedup", "kv_cache_bytes", "peak_memory_mb"} <= set(
                row
            )
    assert all(ms > 0 for ms in result["tower_ms"].values())
    assert set(result["train_samples_per_s"]) == set(result["train_phase_ms"]) == {str(N)} | {str(k) for k in KS}
    assert result["seed"] == 0


def test_ratios_and_cache_sizes_follow_from_the_measurements(result):
    text = 8
    for batch, prefill in result["prefill"].items():
        for key, row in prefill.items():
            k = int(key)
            assert row["sequence_length"] == k + text
            assert row["speedup"] == pytest.approx(prefill[str(N)]["ms"] / row["ms"])
            assert row["lm_only_speedup"] == pytest.approx(prefill[str(N)]["lm_only_ms"] / row["lm_only_ms"])
            assert row["ideal_speedup"] == pytest.approx((N + text) / (k + text))
            assert row["fraction_of_lm_speedup"] == pytest.approx(row["speedup"] / row["lm_only_speedup"])
            # keys and values, 2 layers, the batch, float32, width 64 (= heads x head_dim)
            assert row["kv_cache_bytes"] == 2 * 2 * int(batch) * (k + text) * 64 * 4
            share = result["projector_share"][batch][key]
            assert share == pytest.approx(result["projector_ms_in_model"][batch][key] / row["ms"])
    for key, ratio in result["kmeans_over_sec_plain"].items():
        assert ratio == pytest.approx(result["projector_ms"]["kmeans"][key] / result["projector_ms"]["sec_plain"][key])
    for key, phases in result["train_phase_ms"].items():
        assert phases["step"] >= max(phases["forward"], phases["backward"], phases["optimizer"])
        assert result["train_samples_per_s"][key] == pytest.approx(1 / (phases["step"] / 1000))


def test_prefill_plot_is_written(result, tmp_path):
    plot(result, tmp_path / "prefill.png")
    assert (tmp_path / "prefill.png").stat().st_size > 10_000
    print_tables(result)


def test_train_profile_labels_every_phase():
    profile = train_profile(SpeedSettings(**TINY), (64, 2, 2), batch=1, ks=(N, 36))
    assert set(profile) == {str(N), "36"}
    for phases in profile.values():
        assert set(phases) == set(PROFILE_REGIONS)
        assert all(p["cpu_ms"] > 0 and p["leaf_ops"] > 0 for p in phases.values())
    # the same layers and batch run the same operators whatever K is (the LM's cost is in their size)
    assert profile[str(N)]["lm_forward"]["leaf_ops"] == profile["36"]["lm_forward"]["leaf_ops"]


def test_command_line_flags():
    argv = ["--out", "res dir", "--lm", "7b", "--batch", "1", "8", "--compile", "--device", "cuda"]
    assert command_line(argv) == (
        "python -m sec_mllm.experiments.speed --out 'res dir' --lm 7b --batch 1 8 --compile --device cuda"
    )
    settings = settings_from_args(build_parser().parse_args(argv))
    assert settings.batches == (1, 8) and settings.compile and settings.compile_mode == "reduce-overhead"
    assert (settings.lm_width, settings.lm_layers, settings.vision_width, settings.vision_layers) == (
        4096,
        32,
        1024,
        24,
    )
    assert settings.train_lm == (2048, 22, 32)  # a 7B LM's AdamW state does not fit one 80 GB GPU
    cpu = settings_from_args(build_parser().parse_args(["--out", "x"]))
    assert cpu.vision_width == 1024 and cpu.batches == (1,) and cpu.compile_mode is None and cpu.train_lm is None
