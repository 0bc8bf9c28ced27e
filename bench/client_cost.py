"""What the Python side of luasched costs per task, in instructions (callgrind): deterministic,
so two versions compare exactly on a machine whose speed drifts.

    .venv/bin/python bench/client_cost.py --base 11187b4                # against HEAD
    .venv/bin/python bench/client_cost.py --base 11187b4 --head HEAD --n 2000

For each version (``luasched/`` and ``lua/`` of a revision, extracted as bench/ab.py does) and
each path, one process runs under ``valgrind --tool=callgrind`` twice, with n tasks and with
none, against one private redis-server; the difference over n is what one task costs the client
(import and start-up cancel out; a first run of each version, not counted, compiles its .pyc).
The same run gives the same count to within a few thousand instructions in all. Redis's own
work is not counted: the scripts have their own A/B (bench/script_ab.py, bench/dispatch_ab.py).
The paths:

- ``submit``: n calls of ``Scheduler.submit``, one task each;
- ``submit_many``: one ``submit_many`` of n tasks;
- ``slot``: n tasks dispatched to one processor, then run and acked by its slot loop
  (``process_available``: a start, then one ack-and-start per task), ``dispatch`` included.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ab import versions_on_a_server  # noqa: E402

PATHS = ("submit", "submit_many", "slot")

#: One run: the path over n tasks, in a fresh namespace (argv: url, path, n).
RUN = '''
import sys
import luasched

url, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sched = luasched.Scheduler(url, namespace="cost-" + path + "-" + str(n))


@sched.task
def noop():
    return None


if path == "submit":
    for _ in range(n):
        sched.submit(noop)
elif path == "submit_many":
    sched.submit_many(noop, [()] * n)
else:
    p = sched.processor(capacity=max(n, 1))
    p.register()
    sched.submit_many(noop, [()] * n)
    placed = 0
    while placed < n:
        placed += len(sched.dispatch(100))
    assert p.process_available() == n
    p.deregister()
sched.purge()
sched.close()
'''


def instructions(src: str, url: str, path: str, n: int) -> int:
    """The instructions one run executed (callgrind's 'Collected'), in every thread."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(RUN)
    env = {"PYTHONPATH": f"{src}:{ROOT}", "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, f.name, url, path,
           str(n)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    Path(f.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if not found:
        raise RuntimeError(f"no instruction count in:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", default="HEAD")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--paths", default=",".join(PATHS))
    opts = parser.parse_args()
    per_task: dict[tuple[str, str], float] = {}
    with versions_on_a_server(opts.base, opts.head) as (versions, server):
        for src, _ in versions:  # the first run of a version compiles its .pyc files: not counted
            instructions(src, server.url, "submit", 0)
        for path in opts.paths.split(","):
            for src, short in versions:
                empty = instructions(src, server.url, path, 0)
                full = instructions(src, server.url, path, opts.n)
                per_task[(path, short)] = (full - empty) / opts.n
                print(f"{path:<12} {short}: {per_task[(path, short)]:,.0f} instructions per task", flush=True)
    (_, base), (_, head) = versions
    print(f"\n| path | {base} (base) | {head} | {head} / {base} |")
    print("| --- | --- | --- | --- |")
    for path in opts.paths.split(","):
        a, b = per_task[(path, base)], per_task[(path, head)]
        print(f"| {path} | {a:,.0f} | {b:,.0f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
