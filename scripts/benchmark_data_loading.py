"""Per-rank memory and start-up of the training data at LLaVA scale: LLaVA's list-based loading against the
memory-mapped Arrow copy, with 2 ranks (the module is sec_mllm.experiments.data_loading; see its docstring).

    python scripts/benchmark_data_loading.py --out benchmarks/results/data_loading --work runs/data_loading
"""

from sec_mllm.experiments.data_loading import main

if __name__ == "__main__":
    main()
