"""Every token compressor at K = N/4 and N/16 (identity once) on the synthetic benchmark, over seeds
(the module is sec_mllm.experiments.accuracy; see its docstring).

    python scripts/benchmark_accuracy.py --out benchmarks/results/accuracy
"""

from sec_mllm.experiments.accuracy import main

if __name__ == "__main__":
    main(prog="scripts/benchmark_accuracy.py")
