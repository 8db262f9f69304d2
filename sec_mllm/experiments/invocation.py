"""The command line stored beside an experiment's results, as a user types it.

Every entry module records ``python -m <module> <its arguments>`` in its results file, so the same command can be
run again; ``argv`` None means this process's own arguments.
"""

from __future__ import annotations

import shlex
import sys


def command_line(module: str, argv: list[str] | None) -> str:
    """``python -m module`` and ``argv`` (None: ``sys.argv[1:]``), quoted for a shell."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
