"""The synthetic benchmark's pretrained base, shipped in the package: what Vicuna and OpenAI's CLIP are to LLaVA.

    python -m sec_mllm.experiments.pretrained_base --out sec_mllm/base_assets   # rebuild the shipped one
    python -m sec_mllm.experiments.pretrained_base --out DIR --lm-steps 0        # another recipe, elsewhere

LLaVA never trains its language model or its vision tower: it downloads them and trains the connector (stage 1)
and the language model (stage 2). Nothing can be downloaded here, so the benchmark's base (quickstart.build_base:
a byte-level BPE tokenizer with one token per digit, a tiny Llama pretrained on the corpus's text, a tiny CLIP
vision tower pretrained on dense per-patch targets) is built once by this command, from the data the recipe
generates with its seed, and shipped in ``sec_mllm/base_assets`` with ``recipe.json``: the base fields of the
recipe (quickstart.BASE_FIELDS), the command, the losses and the wall time. The quick start and the accuracy
benchmark start from it when their recipe's base fields are the same (a shared starting point, as a real
comparison shares Vicuna and CLIP) and build their own otherwise, or when asked (``--build-base``). The same
command on the same machine, with the same number of threads, builds the same weights.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..files import replace_folder, write_json_atomic
from .invocation import command_line
from .quickstart import QuickstartConfig, add_recipe_arguments, apply_recipe, base_recipe, build_base, describe_device
from .synthetic import generate


def build_pretrained_base(cfg: QuickstartConfig, out: Path, command: str) -> dict[str, Any]:
    """Generate the recipe's data in a temporary folder, build the base from it into ``out`` (atomically: a
    folder beside it, renamed when complete) and write ``out/recipe.json``; returns that record."""
    staging = out.with_name(f".{out.name}.in-progress")
    shutil.rmtree(staging, ignore_errors=True)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="sec_mllm_base_data_") as data:
        generate(data, cfg.sizes, cfg.seed)
        info = build_base(cfg, Path(data), staging)
    record = {
        "recipe": base_recipe(cfg),
        "command": command,
        "info": info,
        "wall_s": time.time() - start,
        "device": describe_device(),
    }
    write_json_atomic(staging / "recipe.json", record)
    replace_folder(staging, out)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the base's folder (lm/, clip/, recipe.json)")
    parser.add_argument("--seed", type=int, default=0)
    add_recipe_arguments(parser)
    args = parser.parse_args(argv)
    cfg = QuickstartConfig(seed=args.seed)
    apply_recipe(cfg, args)
    command = command_line("sec_mllm.experiments.pretrained_base", argv)
    record = build_pretrained_base(cfg, Path(args.out), command)
    print(f"base written to {args.out} in {record['wall_s']:.0f} s: {record['info']}")


if __name__ == "__main__":
    main()
