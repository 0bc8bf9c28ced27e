"""What handing a task over through scripts costs at low load, beside a bare LPUSH -> BLPOP.

    .venv/bin/python bench/handoff_floor.py [--rounds 9] [--n 600]

No luasched here: the shapes of the hand-off, each measured as bench/run.py's latency workload is
(one task every 2 ms; the time from just before the producer sends to the consumer holding the
payload, the consumer in another process; the first 50 dropped), rows in turn on one private
redis-server, so that every row of a round meets the same moment of the machine:

- ``lpush``: LPUSH, the consumer blocked in BLPOP on the list (huey's shape);
- ``2 scripts``: a function RPUSHes the payload and a wake-up token, the consumer pipelines
  BLPOP on the token's list and a function that LPOPs the payload (luasched's shape: submit, then
  the slot's start behind its BLPOP);
- ``2 scripts + 26 calls``: the same with 16 more commands in the first and 10 in the second
  (about what submit-with-placement and start send, 18 and 11, beside the two here);
- ``1 script``: the function RPUSHes the payload to the consumer's list, which BLPOPs it (a
  hand-off with no script on the consumer's side).

Prints per row the median over the rounds of each run's p50 and p90, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.servers import start_redis  # noqa: E402

LIBRARY = """#!lua name=handoff_floor
redis.register_function('put', function(k, a) redis.call('RPUSH', k[1], a[1]) redis.call('RPUSH', k[2], '1') end)
redis.register_function('take', function(k, a) return redis.call('LPOP', k[1]) end)
redis.register_function('put_more', function(k, a)
  for i = 1, 16 do redis.call('HINCRBY', k[3], 'p' .. i, 1) end
  redis.call('RPUSH', k[1], a[1]) redis.call('RPUSH', k[2], '1') end)
redis.register_function('take_more', function(k, a)
  for i = 1, 10 do redis.call('HINCRBY', k[3], 't' .. i, 1) end
  return redis.call('LPOP', k[1]) end)
redis.register_function('hand', function(k, a) redis.call('RPUSH', k[1], a[1]) end)
"""

#: row -> (the producer's command, the consumer's commands; the payload is the last reply)
SHAPES: dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]] = {
    "lpush": (("LPUSH", "q"), [("BLPOP", "q", 5)]),
    "2 scripts": (("FCALL", "put", "3", "q", "w", "h"), [("BLPOP", "w", 5), ("FCALL", "take", 3, "q", "w", "h")]),
    "2 scripts + 26 calls": (("FCALL", "put_more", "3", "q", "w", "h"),
                             [("BLPOP", "w", 5), ("FCALL", "take_more", 3, "q", "w", "h")]),
    "1 script": (("FCALL", "hand", "1", "q"), [("BLPOP", "q", 5)]),
}


def consume(port: int, shape: str) -> None:
    """The consumer: wait, take the payload, note when it came, until a wait times out."""
    r = redis.Redis(port=port)
    conn = r.connection_pool.get_connection()
    commands = SHAPES[shape][1]
    while True:
        conn.send_packed_command(conn.pack_commands(commands))
        replies = [conn.read_response() for _ in commands]
        came = time.time()
        if replies[0] is None:
            return
        payload = replies[-1][1] if len(commands) == 1 else replies[-1]
        r.rpush("seen", f"{payload.decode()} {came!r}")


def run(port: int, shape: str, n: int) -> tuple[float, float]:
    r = redis.Redis(port=port)
    r.delete("q", "w", "h", "seen")
    consumer = subprocess.Popen([sys.executable, __file__, "--consume", shape, "--port", str(port)])
    try:
        time.sleep(0.5)
        conn = r.connection_pool.get_connection()
        for _ in range(n):
            conn.send_command(*SHAPES[shape][0], repr(time.time()))
            conn.read_response()
            time.sleep(0.002)
        time.sleep(0.2)
    finally:
        consumer.kill()
        consumer.wait()
    pairs = (item.decode().split() for item in r.lrange("seen", 0, -1))
    ms = sorted((float(came) - float(sent)) * 1000 for sent, came in pairs)[50:]
    return statistics.median(ms), ms[int(len(ms) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--consume", choices=SHAPES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        consume(args.port, args.consume)
        return
    server = start_redis()
    try:
        redis.Redis.from_url(server.url).function_load(LIBRARY, replace=True)
        runs: dict[str, list[tuple[float, float]]] = {shape: [] for shape in SHAPES}
        for i in range(args.rounds):
            for shape in SHAPES if i % 2 == 0 else list(SHAPES)[::-1]:
                runs[shape].append(run(server.port, shape, args.n))
            print(f"  round {i + 1} of {args.rounds}", flush=True)
    finally:
        server.cleanup()
    base = statistics.median(p50 for p50, _ in runs["lpush"])
    for shape, got in runs.items():
        p50, p90 = statistics.median(a for a, _ in got), statistics.median(b for _, b in got)
        print(f"{shape:<22} p50 {p50:.3f} ms  p90 {p90:.3f} ms  (p50 {1000 * (p50 - base):+.0f} us over lpush)")


if __name__ == "__main__":
    main()
