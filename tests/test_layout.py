"""The shape of the package: no import cycles (imports inside functions count), the model imports only what
a model needs, the experiments and the integrations (demo page, lmms-eval plugin) are never imported by the
library and their optional dependencies never by `import sec_mllm`, a saved checkpoint carries only the model's
files, and the installed package runs its quick start without a checkout."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sec_mllm"
MODEL_FILES = {
    "configuration_sec_mllm",
    "modeling_sec_mllm",
    "processing_sec_mllm",
    "vision",
    "connectors",
    "projectors",
    "projector_base",
    "projector_sec",
    "projector_identity",
    "projector_avgpool",
    "projector_tome",
    "projector_kmeans",
}
ENTRY_ALIASES = {"sec_mllm.quickstart"}  # `python -m sec_mllm.quickstart`: an alias of experiments.quickstart
# Integrations users run, with optional dependencies (pip install -e ".[demo]" / ".[lmms]"): like the experiments,
# they use the library and nothing in the library imports them.
INTEGRATIONS = {"sec_mllm.demo", "sec_mllm.lmms_eval_plugin", "sec_mllm.lmms_eval_tasks"}
OPTIONAL_DEPENDENCIES = ("gradio", "lmms_eval", "playwright")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the sec_mllm modules it imports anywhere in its body (top level or inside functions)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_import_cycles():
    graph = import_graph()
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_the_model_imports_only_what_a_model_needs():
    graph = import_graph()
    assert graph["sec_mllm.modeling_sec_mllm"] == {
        "sec_mllm.configuration_sec_mllm",
        "sec_mllm.vision",
        "sec_mllm.projectors",
        "sec_mllm.connectors",
    }
    closure = reachable(graph, "sec_mllm.modeling_sec_mllm") | reachable(graph, "sec_mllm.processing_sec_mllm")
    assert closure <= {f"sec_mllm.{m}" for m in MODEL_FILES}, closure
    importers = {name for name, edges in graph.items() if "sec_mllm.convert_llava" in edges}
    # re-exported by the package, used by the checkpoint loader, imported by nothing in the model
    assert importers == {"sec_mllm", "sec_mllm.inference"}, importers


def test_library_never_imports_the_experiments_and_lora_not_the_driver():
    graph = import_graph()
    library = [n for n in graph if not n.startswith("sec_mllm.experiments") and n not in ENTRY_ALIASES]
    offenders = {n: sorted(e for e in graph[n] if e.startswith("sec_mllm.experiments")) for n in library}
    assert not {n: e for n, e in offenders.items() if e}
    assert "sec_mllm.train.run" not in reachable(graph, "sec_mllm.train.lora")
    assert not any(n.startswith("sec_mllm.tiny") for n in reachable(graph, "sec_mllm.train.run"))


def test_library_never_imports_the_integrations_nor_their_optional_dependencies():
    graph = import_graph()
    library = [n for n in graph if n not in INTEGRATIONS and not n.startswith("sec_mllm.experiments")]
    assert not {n: sorted(graph[n] & INTEGRATIONS) for n in library if graph[n] & INTEGRATIONS}
    assert INTEGRATIONS <= set(graph)
    for path in PACKAGE.rglob("*.py"):
        if module_name(path) in INTEGRATIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            assert not [n for n in names if n.split(".")[0] in OPTIONAL_DEPENDENCIES], (path, names)
    check = (
        "import sys, sec_mllm, sec_mllm.inference, sec_mllm.lmms_eval_tasks; "
        f"print(sorted(m for m in {OPTIONAL_DEPENDENCIES!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_a_saved_checkpoint_carries_only_the_model_files(make_model, tmp_path):
    model, processor = make_model("sec", {"num_tokens": 4})
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert {p.stem for p in tmp_path.glob("*.py")} == MODEL_FILES


@pytest.mark.slow
def test_installed_package_runs_the_quickstart_from_an_empty_folder(tmp_path):
    """A wheel of the package alone (no checkout on the path) runs `python -m sec_mllm.quickstart --reduced`."""
    site = tmp_path / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
        str(ROOT),
    ]
    result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (site / "sec_mllm" / "configs" / "deepspeed").glob("*.json")) == [
        "zero2.json",
        "zero3.json",
        "zero3_offload.json",
    ]
    shipped = site / "sec_mllm" / "base_assets"  # the default recipe's base travels with the package
    for part in ("recipe.json", "lm/model.safetensors", "lm/tokenizer.json", "clip/model.safetensors"):
        assert (shipped / part).is_file(), part
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import sec_mllm; print(sec_mllm.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    run = subprocess.run(
        [sys.executable, "-m", "sec_mllm.quickstart", "--reduced", "--out", "qs"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    results = json.loads((empty / "qs" / "results.json").read_text())
    for bench in ("gqa", "textvqa"):
        assert set(results[bench]) == {"sec", "identity", "blind"}
        for scores in results[bench].values():
            assert 0.0 <= scores["accuracy"] <= 100.0 and set(scores["per_stratum"]) == {"family", "size", "position"}
    assert {"data_s", "base_s", "sec", "identity", "blind_s"} <= set(results["timings"])
    assert results["base"]["shipped"] is None  # the reduced recipe builds its own base
    assert results["base"]["dense_loss_last"] < results["base"]["dense_loss_first"]
    assert len(results["cluster_pictures"]) == 5 and all((empty / p).is_file() for p in results["cluster_pictures"])
    assert "overall" in run.stdout and "stage 2" in run.stdout
