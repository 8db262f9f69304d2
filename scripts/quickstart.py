"""One-command synthetic quick start (CPU, minutes): data, tiny model, two training stages through
`deepspeed`, evaluation, a results table and cluster pictures. See sec_mllm/experiments/quickstart.py.

    python scripts/quickstart.py [--out runs/quickstart] [--reduced]
"""

from sec_mllm.experiments.quickstart import main

if __name__ == "__main__":
    main()
