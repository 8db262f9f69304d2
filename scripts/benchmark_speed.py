"""Speed and memory of SEC against the other projectors and against all 576 tokens, in one run
(the module is sec_mllm.experiments.speed; see its docstring).

    python scripts/benchmark_speed.py --out benchmarks/results/speed_cpu
"""

from sec_mllm.experiments.speed import main

if __name__ == "__main__":
    main()
