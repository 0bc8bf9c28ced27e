"""Latency from submit to task start at low load: now the ``latency`` workload of bench/run.py.

    python bench/latency.py [--quick]      # = python bench/run.py --only latency --systems luasched

Kept as a shortcut; the suite measures luasched's plain and eager modes (and each peer) the same
way: one task at a time, 2 ms apart, each a marker task that pushes its start time to a key the
producer BLPOPs; the "+result" rows wait with TaskHandle.result() instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    run = Path(__file__).resolve().parent / "run.py"
    sys.exit(subprocess.call([sys.executable, str(run), "--only", "latency", "--systems", "luasched",
                              "--no-report", *sys.argv[1:]]))
