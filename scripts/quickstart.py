"""One-command synthetic quick start (CPU, minutes): data, tiny model, two training stages through
`deepspeed`, evaluation with eval/, a results table and cluster pictures. See sec_mllm/quickstart.py.

    python scripts/quickstart.py [--out runs/quickstart] [--reduced]
"""

from sec_mllm.quickstart import main

if __name__ == "__main__":
    main()
