"""The accuracy benchmark: its grid, the flags of each variant, aggregation, the report, resume, one real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sec_mllm.experiments.accuracy import (
    NAMED_VARIANTS,
    VARIANTS,
    AccuracyConfig,
    RunKey,
    aggregate,
    check_grid,
    check_recipe,
    default_sec_names,
    find_variants,
    grid,
    main,
    markdown,
    recipe_record,
    recommend_sec_variant,
    run_one,
    sec_against_baselines,
)
from sec_mllm.projectors import build_projector, list_projectors
from sec_mllm.train.arguments import parse_args
from sec_mllm.train.assemble import projector_config

ROOT = Path(__file__).resolve().parents[1]


def test_grid_covers_every_registered_projector_at_two_budgets_seed_major():
    assert {v.projector for v in VARIANTS} == set(list_projectors())
    keys = grid(AccuracyConfig())
    assert len(keys) == 3 * (1 + 2 * (len(VARIANTS) - 1))
    assert [k.seed for k in keys] == sorted(k.seed for k in keys)  # seed-major: an interrupted run stays balanced
    assert {k.tokens for k in keys if k.variant.name == "identity"} == {64}
    assert {k.tokens for k in keys if k.variant.name != "identity"} == {16, 4}
    assert len({k.name for k in keys}) == len(keys)
    with pytest.raises(ValueError, match="unknown variant"):
        find_variants(["sec", "nope"])


def test_budgets_the_projectors_cannot_build_stop_before_any_run():
    check_grid(VARIANTS, (16, 4))
    with pytest.raises(ValueError, match=r"'sec' at K=100 \(N=64\).*allowed: 1 <= num_tokens <= 64"):
        check_grid(find_variants(["sec"]), (100,))
    with pytest.raises(ValueError, match="'avgpool' at K=8.*perfect square"):
        check_grid(find_variants(["avgpool"]), (8,))
    result = subprocess.run(
        [sys.executable, "-m", "sec_mllm.experiments.accuracy", "--out", "unused", "--budgets", "16", "65"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.returncode == 2 and "K=65 (N=64)" in result.stderr and "allowed: 1 <= num_tokens <= 64" in result.stderr
    )


@pytest.mark.parametrize("variant", NAMED_VARIANTS, ids=[v.name for v in NAMED_VARIANTS])
def test_each_variant_trains_the_projector_it_names(variant, tmp_path):
    base = ["--model_name_or_path", "m", "--vision_tower", "v", "--data_path", "d", "--output_dir", str(tmp_path)]
    for tokens in variant.token_counts():
        model_args, _, _ = parse_args(base + variant.training_flags(tokens))
        projector = build_projector(model_args.projector_type, projector_config(model_args), in_dim=8)
        out = projector(torch.randn(2, 64, 8))
        assert out.tokens.shape == (2, tokens, 8)
        if variant.name.startswith("sec/"):
            option, value = variant.flags[0].removeprefix("--sec_"), variant.flags[1]
            assert str(getattr(projector.config, option)) == value


def _result(variant: str, projector: str, tokens: int, seed: int, gqa: float, textvqa: float) -> dict:
    def bench(acc: float) -> dict:
        return {
            "accuracy": acc,
            "binary": acc,
            "open": acc,
            "per_stratum": {"size": {"small": {"accuracy": acc - 1, "count": 3}}},
        }

    return {
        "variant": variant,
        "projector": projector,
        "tokens": tokens,
        "seed": seed,
        "gqa": bench(gqa),
        "textvqa": bench(textvqa),
        "timings": {},
        "gqa_binary": gqa,
        "gqa_open": gqa,
    }


def test_aggregate_report_and_verdicts():
    results = [_result("identity", "identity", 64, s, 50 + s, 30) for s in (0, 1, 2)]
    results += [_result("sec", "sec", 16, s, 48 + 2 * s, 31) for s in (0, 1, 2)]  # 48, 50, 52
    results += [_result("avgpool", "avgpool", 16, s, 60, 20) for s in (0, 1, 2)]
    table = aggregate(results)
    sec = table["sec@16"]["gqa"]["accuracy"]
    assert sec["mean"] == pytest.approx(50.0) and sec["std"] == pytest.approx(2.0) and sec["values"] == [48, 50, 52]
    assert table["sec@16"]["gqa"]["per_stratum"]["size"]["small"]["mean"] == pytest.approx(49.0)
    lines = sec_against_baselines(table)
    assert "Shapes-GQA, K=16: sec 50.0 vs avgpool@16 60.0 (-10.0): SEC LOWER" in lines
    assert "Rendered-TextVQA, K=16: sec 31.0 vs avgpool@16 20.0 (+11.0): sec higher or equal" in lines
    assert any(
        line.startswith("Shapes-GQA, K=16: sec 50.0 vs identity@64 51.0 (-1.0): SEC LOWER, within one seed-std")
        for line in lines
    )
    runs = [
        {k: r[k] for k in ("variant", "projector", "tokens", "seed", "gqa_binary", "gqa_open")}
        | {b: r[b]["accuracy"] for b in ("gqa", "textvqa")}
        for r in results
    ]
    report = {
        "command": "python scripts/benchmark_accuracy.py --out X",
        "table": table,
        "blind": {"gqa": 40.0, "textvqa": 10.0},
        "runs": runs,
        "sec_vs_baselines": lines,
        "sec_default": recommend_sec_variant(runs),
    }
    text = markdown(report)
    assert "| sec | 16 | 50.0 ± 2.0 | 31.0 ± 0.0 |" in text
    assert text.index("| identity | 64") < text.index("| sec | 16") < text.index("| avgpool | 16")
    assert "## Shapes-GQA by size" in text and "SEC LOWER" in text


def test_a_finished_run_is_reused_only_with_the_same_settings(tmp_path):
    cfg = AccuracyConfig()
    key = RunKey(find_variants(["sec"])[0], 16, 0)
    done = tmp_path / key.name / "result.json"
    done.parent.mkdir()
    stored = {"flags": key.variant.training_flags(16), "stage2_steps": cfg.model.stage2_steps, "marker": 1}
    done.write_text(json.dumps(stored))
    assert run_one(cfg, key, tmp_path, tmp_path, tmp_path)["marker"] == 1  # no training: reused
    cfg.model.stage2_steps += 1
    with pytest.raises(SystemExit, match=f"{done}.*was made with"):
        run_one(cfg, key, tmp_path, tmp_path, tmp_path)


def test_a_work_folder_is_reused_only_with_the_same_recipe(tmp_path):
    cfg = AccuracyConfig()
    with pytest.raises(SystemExit, match=r"an unrecorded recipe \(no recipe.json\)"):
        check_recipe(tmp_path, recipe_record(cfg.model))
    (tmp_path / "recipe.json").write_text(json.dumps(recipe_record(cfg.model)))
    check_recipe(tmp_path, recipe_record(cfg.model))  # the same recipe: reused
    cfg.model.clip_steps += 1
    with pytest.raises(SystemExit, match=r"another recipe \(differs in \['clip_steps'\]\)"):
        check_recipe(tmp_path, recipe_record(cfg.model))


def test_recipe_flags_are_the_quick_starts_and_bad_values_stop_before_any_run(tmp_path):
    with pytest.raises(SystemExit, match="--turns must be > 0, got 0"):
        main(["--out", str(tmp_path / "r"), "--work", str(tmp_path / "w"), "--turns", "0"])
    with pytest.raises(SystemExit, match="--dense-images must be > 0, got -5"):
        main(["--out", str(tmp_path / "r"), "--work", str(tmp_path / "w"), "--dense-images", "-5"])
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_reduced_benchmark_runs_and_resumes(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "benchmark_accuracy.py"),
        "--reduced",
        "--out",
        str(tmp_path / "results"),
        "--work",
        str(tmp_path / "work"),
        "--variants",
        "identity",
        "sec",
        "--seeds",
        "0",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    report = json.loads((tmp_path / "results" / "accuracy.json").read_text())
    assert set(report["table"]) == {"identity@64", "sec@16", "sec@4"}
    for entry in report["table"].values():
        for bench in ("gqa", "textvqa"):
            assert 0.0 <= entry[bench]["accuracy"]["mean"] <= 100.0 and entry[bench]["per_stratum"]
    assert (tmp_path / "results" / "accuracy.png").stat().st_size > 10_000
    assert "| sec | 4 |" in (tmp_path / "results" / "accuracy.md").read_text()
    logs = {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "runs").glob("*/stage2.log")}
    assert len(logs) == 3
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)  # resumes: nothing to train
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert json.loads((tmp_path / "results" / "accuracy.json").read_text())["table"] == report["table"]
    assert {p: p.stat().st_mtime_ns for p in logs} == logs
    other = subprocess.run([*cmd, "--turns", "2"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert other.returncode != 0 and "another recipe (differs in ['sizes'])" in other.stderr


def _run(variant: str, seed: int, gqa: float, textvqa: float) -> dict:
    return {"variant": variant, "projector": "sec", "tokens": 16, "seed": seed, "gqa": gqa, "textvqa": textvqa}


def test_default_sec_variant_changes_only_on_a_clear_lead():
    base = [_run("sec", s, 50 + s, 30) for s in (0, 1, 2)]  # per-seed scores 40, 40.5, 41: mean 40.5, std 0.5
    close = [_run("sec/halves", s, 51 + s, 30) for s in (0, 1, 2)]  # 41 +- 0.5: leads by 0.5, not more than 0.5
    choice = recommend_sec_variant(base + close)
    assert choice["best"] == "sec/halves" and choice["recommended"] == "sec"
    assert choice["scores"]["sec"]["mean"] == pytest.approx(40.5) and choice["scores"]["sec"]["std"] == pytest.approx(
        0.5
    )
    clear = [_run("sec/halves", s, 54 + s, 30) for s in (0, 1, 2)]  # leads by 2 > 0.5
    assert recommend_sec_variant(base + clear)["recommended"] == "sec/halves"
    assert recommend_sec_variant([_run("sec", 0, 50, 30), _run("sec/halves", 0, 40, 30)])["recommended"] == "sec"
    one_seed = recommend_sec_variant([_run("sec", 0, 50, 30), _run("sec/halves", 0, 60, 30)])  # no spread to beat
    assert one_seed["best"] == "sec/halves" and one_seed["recommended"] == "sec" and not one_seed["decided"]
    assert recommend_sec_variant(base + clear)["decided"]
    identity_only = [{**_run("identity", 0, 60, 60), "projector": "identity", "tokens": 64}]
    assert recommend_sec_variant(identity_only)["recommended"] == "sec"  # no SEC runs: nothing to choose


def test_the_default_spelled_out_stands_for_it():
    assert default_sec_names() == {"sec", "sec/mean"}
    spelled = [_run("sec/mean", s, 50 + s, 30) for s in (0, 1, 2)]  # 40.5 +- 0.5
    close = [_run("sec/halves", s, 51 + s, 30) for s in (0, 1, 2)]  # leads by 0.5, not more than 0.5
    choice = recommend_sec_variant(spelled + close)
    assert choice["best"] == "sec/halves" and choice["recommended"] == "sec"
    clear = [_run("sec/halves", s, 54 + s, 30) for s in (0, 1, 2)]
    assert recommend_sec_variant(spelled + clear)["recommended"] == "sec/halves"
    assert recommend_sec_variant(spelled)["recommended"] == "sec"
