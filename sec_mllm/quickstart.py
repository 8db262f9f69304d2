"""Entry point of the synthetic quick start: ``python -m sec_mllm.quickstart [--reduced] [--out DIR]``.

The code lives in ``sec_mllm.experiments.quickstart``; this alias keeps the documented command short. No
module of the library imports it.
"""

from .experiments.quickstart import main

if __name__ == "__main__":
    main()
