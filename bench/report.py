"""Write the result tables (from bench/results/*.json) into bench/README.md, between markers.

    python bench/report.py [--results bench/results] [--print]

Only the part between ``<!-- results:start -->`` and ``<!-- results:end -->`` is rewritten; the
method around it is written by hand.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
START, END = "<!-- results:start -->", "<!-- results:end -->"


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def num(x: float, digits: int = 0) -> str:
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def short(label: str) -> str:
    return label.replace("luasched ", "")


def peers_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["system"] != "luasched"]


def ours(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["system"] == "luasched"]


def run_of(meta: dict[str, Any]) -> str:
    """The luasched a run measured, for readers: its version (the JSON also keeps the commit)."""
    return f"luasched {meta.get('luasched', '?')}"


def machine_of(meta: dict[str, Any]) -> str:
    return f"{meta['cpus']} cores ({meta['machine']})"


def versions(meta: dict[str, Any] | None, *datasets: dict[str, Any] | None) -> str:
    seen: dict[str, str] = {}
    for d in datasets:
        if not d:
            continue
        for r in d.get("rows", []):
            seen.setdefault(r["system"], r["version"])
    parts = [f"{k} {v}" for k, v in seen.items()]
    head = ""
    if meta:
        head = (f"Measured {meta['date']} with {run_of(meta)} on {machine_of(meta)}, Python {meta['python']}, "
                f"Redis {meta['redis']} on loopback; median of {meta['repeat']} runs per figure.\n\n")
    return head + "Versions: " + ", ".join(parts) + "."


def throughput_section(d: dict[str, Any]) -> list[str]:
    rows = d["rows"]
    out = [f"### 1. End-to-end throughput ({d['n']:,} no-op tasks queued, then one worker process drains them)", ""]
    out.append(table(["system / mode", "concurrency", "tasks/s", "Redis CPU µs/task", "Redis CPU %",
                      "worker CPU µs/task"],
                     [[r["label"], r["concurrency"], num(r["rate"]), num(r["redis_cpu_us_per_task"], 1),
                       num(r["redis_cpu_pct"]), num(r.get("worker_cpu_us_per_task", 0))] for r in rows], "llrrrr"))
    out += ["", "Worker CPU: user + system time of the worker processes (and, for luasched plain and eager, the "
            "scheduler process) from the moment the first task was taken, per task; Redis CPU: `used_cpu_user + "
            "used_cpu_sys` of the server over the drain, per task and as a share of one core."]
    peers = peers_of(rows)
    if ours(rows) and peers:
        out += ["", "luasched's rate as a ratio to each peer's (higher is better for luasched):", ""]
        out.append(table(["luasched"] + [p["label"] for p in peers],
                         [[short(r["label"])] + [ratio(r["rate"], p["rate"]) for p in peers] for r in ours(rows)]))
    return out


def submit_section(d: dict[str, Any]) -> list[str]:
    rows = d["rows"]
    out = [f"### 2. Submit rate (one call per task: {d['n_one']:,} tasks; bulk: {d['n_batch']:,} tasks)", ""]
    out.append(table(["system", "how", "API", "tasks/s"],
                     [[r["label"], r["mode"], r["batch_api"] if r["mode"] != "one" else "one submit call per task",
                       num(r["rate"])] for r in rows], "lllr"))
    peers_one = [r for r in peers_of(rows) if r["mode"] == "one"]
    mine = ours(rows)
    if mine and peers_one:
        def best(system: str) -> dict[str, Any]:
            return max((r for r in rows if r["system"] == system), key=lambda r: r["rate"])

        out += ["", "Ratios, luasched / peer (one-by-one against one-by-one; luasched's best bulk against "
                "each peer's best way, bulk where it has one):", ""]
        one = next(r for r in mine if r["mode"] == "one")
        bulk = max(mine, key=lambda r: r["rate"])
        out.append(table(["luasched"] + [p["label"] for p in peers_one],
                         [["one at a time"] + [ratio(one["rate"], p["rate"]) for p in peers_one],
                          [f"submit_many ({bulk['mode']})"] + [ratio(bulk["rate"], best(p["system"])["rate"])
                                                              for p in peers_one]]))
    return out


def paired(ours_runs: list[dict[str, Any]], peer_runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Round by round (the rows are measured in turn, so run i of each row shares a phase of the
    machine): the ratios ours / peer of ``key``, their median, a 95% bootstrap interval of that
    median (4,000 resamples, seeded: the same results give the same table) and how many rounds
    came out at or below 1."""
    ratios = [a[key] / b[key] for a, b in zip(ours_runs, peer_runs, strict=False)]
    rng = random.Random(1)
    boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(4000))
    return {"median": statistics.median(ratios), "low": boot[100], "high": boot[3899],
            "at_most_1": sum(r <= 1 for r in ratios), "rounds": len(ratios)}


def paired_text(p: dict[str, Any]) -> str:
    return (f"{p['median']:.2f} ({p['low']:.2f}-{p['high']:.2f}), "
            f"{p['at_most_1']} of {p['rounds']} rounds <= 1")


def huey_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in peers_of(rows) if r["system"] == "huey"), None)


def latency_section(d: dict[str, Any]) -> list[str]:
    rows = d["rows"]
    out = [f"### 3. Latency from submit to task start, low load ({d['n']} tasks one at a time, 2 ms apart; "
           f"arq with its default poll: {d['n_arq_default']})", ""]
    out.append(table(["system / mode", "p50 ms", "p99 ms", "max ms", "mean ms"],
                     [[r["label"], num(r["p50_ms"], 2), num(r["p99_ms"], 2), num(r["max_ms"], 2),
                       num(r["mean_ms"], 2)] for r in rows]))
    peers = peers_of(rows)
    if ours(rows) and peers:
        out += ["", "p50 as a ratio, luasched / peer (below 1: luasched starts tasks sooner):", ""]
        out.append(table(["luasched"] + [p["label"] for p in peers],
                         [[short(r["label"]).replace(" c1", "")] + [ratio(r["p50_ms"], p["p50_ms"]) for p in peers]
                          for r in ours(rows)]))
    huey = huey_row(rows)
    if ours(rows) and huey and len(huey["runs"]) > 1:
        out += ["", "Against huey round by round (each round measures every row in turn): the median of the "
                    "per-round ratios luasched / huey, its 95% bootstrap interval, and the rounds at or below 1:",
                ""]
        out.append(table(["luasched", "p50", "p99"],
                         [[short(r["label"])] + [paired_text(paired(r["runs"], huey["runs"], k))
                                                 for k in ("p50_ms", "p99_ms")] for r in ours(rows)], "lll"))
    return out


def memory_section(d: dict[str, Any]) -> list[str]:
    rows = d["rows"]
    out = [f"### 4. Redis memory per queued task (`used_memory` delta / {d['n']:,}, no worker running)", ""]
    out.append(table(["system", "bytes/task", "keys/task"],
                     [[r["label"], num(r["bytes_per_task"]), num(r["keys_per_task"], 2)] for r in rows]))
    mine, peers = ours(rows), peers_of(rows)
    if mine and peers:
        b = mine[0]["bytes_per_task"]
        out += ["", "luasched / peer: " + ", ".join(f"{p['label']} {ratio(b, p['bytes_per_task'])}" for p in peers)]
    return out


def _calls(stats: dict[str, Any]) -> int:
    return sum(v["calls"] for v in stats.values())


def _top(stats: dict[str, Any], n: int, per: int) -> str:
    top = sorted(stats.items(), key=lambda kv: -kv[1]["calls"])[:n]
    return ", ".join(f"{k} {v['calls'] / per:.1f}" for k, v in top)


def commands_section(d: dict[str, Any]) -> list[str]:
    n = d["n"]
    out = [f"### 5. Redis commands and round trips per task ({n:,} tasks submitted one call each, then drained)", "",
           "Commands: `INFO commandstats` after `CONFIG RESETSTAT`, split into the submit phase and the "
           "processing phase; Redis 7 counts the commands a Lua script runs as well as the EVALSHA itself, so "
           "\"commands\" includes everything run inside scripts. The benchmark's own polling commands are "
           "subtracted. Round trips: every process counts its redis-py `send_packed_command` calls (one per "
           "command or per pipeline; bench/rtcount/sitecustomize.py), divided by the tasks; the processing side "
           "includes the workers' start-up and 1 s of idle time after the drain (heartbeats, polls)."
           + (f" Each row is the median of {len(d['rows'][0]['runs'])} runs by processing commands per task "
              "(every figure of a row from that run; all runs in bench/results/commands.json)."
              if d["rows"] and "runs" in d["rows"][0] else ""), ""]
    rows = []
    for r in d["rows"]:
        sub, proc, rt = r["commands_submit"], r["commands_process"], r["round_trips_process"]
        rows.append([r["label"], num(_calls(sub) / n, 2), num(r["round_trips_producer"] / n, 2),
                     num(_calls(proc) / n, 2), num(proc.get("evalsha", {}).get("calls", 0) / n, 2),
                     num(rt.get("worker", 0) / n, 2), num(rt.get("scheduler", 0) / n, 2), _top(proc, 4, n)])
    out.append(table(["system / mode", "submit: commands", "submit: round trips", "processing: commands",
                      "processing: EVALSHA", "worker round trips", "scheduler round trips",
                      "top processing commands per task"], rows, "lrrrrrrl"))
    peers = peers_of(d["rows"])
    if ours(d["rows"]) and peers:
        def trips(r: dict[str, Any]) -> float:  # the processing side's: workers and scheduler
            return float(sum(r["round_trips_process"].values()))

        out += ["", "luasched / peer, per task on the processing side (below 1: luasched needs fewer): "
                "round trips (workers and scheduler), then Redis commands:", ""]
        def both(r: dict[str, Any], p: dict[str, Any]) -> str:
            return (f"{ratio(trips(r), trips(p))} / "
                    f"{ratio(_calls(r['commands_process']), _calls(p['commands_process']))}")

        out.append(table(["luasched"] + [p["label"] for p in peers],
                         [[short(r["label"])] + [both(r, p) for p in peers] for r in ours(d["rows"])]))
    return out


def dispatch_section(d: dict[str, Any]) -> list[str]:
    out = ["### 6. Dispatch cost per dispatched task (the dispatch script measured directly, limit 100 per call)", ""]
    bp = d["by_processors"]
    split = "lua_us_per_task" in bp[0]
    for key, title in (("by_processors", "All registered processors idle: a call's tasks spread over "
                                          "min(processors, 100) of them"),
                       ("by_registered", "10 processors idle, the others full: every call touches 10, "
                                         "whatever the number registered"),
                       ("by_labelled", "All idle, a tenth labelled gpu=a, every task requiring it (routing)")):
        rows = d.get(key)
        if not rows:
            continue
        touched = "tasks_per_processor_touched" in rows[0]
        out += [title + ":", ""]
        out.append(table(["registered processors", "queued", "µs/task in the script (EVALSHA usec)",
                          "µs/task with the round trip", "Redis commands/task inside the script",
                          *(["tasks per processor touched"] if touched else []),
                          *(["of the script: commands / Lua µs", "top commands, µs/task"] if split else [])],
                         [[num(r["processors"]), num(r["queued"]), num(r["server_us_per_task"], 2),
                           num(r["client_us_per_task"], 2), num(r["redis_calls_per_task"], 1),
                           *([num(r["tasks_per_processor_touched"], 1)] if touched else []),
                           *([f"{r['commands_us_per_task']:.2f} / {r['lua_us_per_task']:.2f}",
                              ", ".join(f"{k} {v:.2f}" for k, v in r["top_commands_us_per_task"].items())]
                             if split else [])] for r in rows],
                         "r" * (5 + touched + split) + ("l" if split else "")))
        lo, hi = min(r["server_us_per_task"] for r in rows), max(r["server_us_per_task"] for r in rows)
        out += ["", f"Spread over processors: max/min = {hi / lo:.2f}x.", ""]
    bq = d["by_queue"]
    out.append(table(["queued", "processors", "µs/task in the script (EVALSHA usec)", "µs/task with the round trip",
                      "Redis commands/task inside the script"],
                     [[num(r["queued"]), num(r["processors"]), num(r["server_us_per_task"], 2),
                       num(r["client_us_per_task"], 2), num(r["redis_calls_per_task"], 1)] for r in bq]))
    lo, hi = min(r["server_us_per_task"] for r in bq), max(r["server_us_per_task"] for r in bq)
    out += ["", f"Spread over queue lengths: max/min = {hi / lo:.2f}x."]
    return out


def processes_section(d: dict[str, Any]) -> list[str]:
    out = [f"### 7. Several processor processes ({d['n']:,} tasks queued, one Redis)", ""]
    out.append(table(["mode", "processes", "tasks/s", "Redis CPU µs/task", "Redis CPU %", "processors' CPU µs/task"],
                     [[short(r["label"]).split(" x")[0], str(r["processes"]), num(r["rate"]),
                       num(r["redis_cpu_us_per_task"], 1), num(r["redis_cpu_pct"]),
                       num(r.get("worker_cpu_us_per_task", 0))] for r in d["rows"]],
                     "lrrrrr"))
    return out


def goals_section(res: dict[str, dict[str, Any] | None]) -> list[str]:
    rows = []

    def add(goal: str, measured: str, met: bool | None) -> None:
        rows.append([goal, measured, "-" if met is None else ("met" if met else "**not met**")])

    t = res.get("throughput")
    if t and ours(t["rows"]) and peers_of(t["rows"]):
        best = max(ours(t["rows"]), key=lambda r: r["rate"])
        peer = max(peers_of(t["rows"]), key=lambda r: r["rate"])
        add("end-to-end >= 10k tasks/s, one processor process",
            f"{num(best['rate'])}/s ({short(best['label'])})", best["rate"] >= 10000)
        single = [r for r in ours(t["rows"]) if "batch" not in r["label"]]
        if single and single != ours(t["rows"]):
            b1 = max(single, key=lambda r: r["rate"])
            add("... the same with one task per round trip (no --batch)",
                f"{num(b1['rate'])}/s ({short(b1['label'])}), {b1['rate'] / peer['rate']:.2f}x {peer['label']}",
                b1["rate"] >= 10000 and b1["rate"] >= 2 * peer["rate"])
        add("end-to-end >= 2x the best peer", f"{best['rate'] / peer['rate']:.2f}x {peer['label']} "
            f"({num(peer['rate'])}/s)", best["rate"] >= 2 * peer["rate"])
        default = next((r for r in ours(t["rows"]) if r.get("variant") == "default"), None)
        if default:
            add("the defaults (`luasched processor APP`, nothing else) >= 2.5x the best peer",
                f"{num(default['rate'])}/s, {default['rate'] / peer['rate']:.2f}x {peer['label']}",
                default["rate"] >= 2.5 * peer["rate"])
    s = res.get("submit")
    if s and ours(s["rows"]):
        one = next(r for r in ours(s["rows"]) if r["mode"] == "one")
        bulk = max(ours(s["rows"]), key=lambda r: r["rate"])
        add("submit >= 10k/s one by one", f"{num(one['rate'])}/s", one["rate"] >= 10000)
        add("submit_many >= 50k/s", f"{num(bulk['rate'])}/s ({bulk['mode']})", bulk["rate"] >= 50000)
    lat = res.get("latency")
    if lat and ours(lat["rows"]):
        default = next((r for r in ours(lat["rows"]) if r.get("variant") == "default"), None)
        huey = huey_row(lat["rows"])
        if default and huey:  # judged round by round (the rows are measured in turn)
            p50, p99 = (paired(default["runs"], huey["runs"], k) for k in ("p50_ms", "p99_ms"))
            add("latency with the defaults no worse than huey's, p50 and p99 (shown: the 95% interval of "
                "the per-round ratio at or below 1)",
                f"p50 {default['p50_ms']:.2f} / {huey['p50_ms']:.2f} ms, p99 {default['p99_ms']:.2f} / "
                f"{huey['p99_ms']:.2f} ms; ratios p50 {p50['median']:.2f} ({p50['low']:.2f}-{p50['high']:.2f}), "
                f"p99 {p99['median']:.2f} ({p99['low']:.2f}-{p99['high']:.2f})",
                p50["high"] <= 1 and p99["high"] <= 1)
        for r in ours(lat["rows"]):
            add(f"latency p50 <= 0.4 ms, p99 <= 1 ms ({short(r['label'])})",
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms", r["p50_ms"] <= 0.4 and r["p99_ms"] <= 1.0)
    m = res.get("memory")
    if m and ours(m["rows"]):
        b = ours(m["rows"])[0]["bytes_per_task"]
        add("Redis memory <= 200 B per queued task", f"{b:,.0f} B", b <= 200)
    c = res.get("commands")
    if c:
        for r in ours(c["rows"]):
            w = r["round_trips_process"].get("worker", 0) / r["n"]
            add(f"processor round trips <= 1 per task ({short(r['label'])})", f"{w:.3f}", w <= 1.01)
    d = res.get("dispatch")
    if d:
        for key, what, field, bound in (("by_processors", "processors, all idle", "processors", 1.2),
                                        ("by_registered", "processors registered, 10 idle", "processors", 1.2),
                                        ("by_labelled", "processors, a tenth with the label tasks require",
                                         "processors", 1.3),
                                        ("by_queue", "queue length", "queued", 1.2)):
            if key not in d:
                continue
            v = [r["server_us_per_task"] for r in d[key]]
            span = f"{min(r[field] for r in d[key]):,}"
            top = f"{max(r[field] for r in d[key]):,}"
            add(f"dispatch cost flat within {bound}x over {what} ({span} to {top})",
                f"{max(v) / min(v):.2f}x ({min(v):.1f} to {max(v):.1f} µs/task)", max(v) / min(v) <= bound)
    return [table(["goal", "measured", ""], rows, "lll")]


def render(results: Path) -> str:
    res = {name: load(results, name) for name in
           ("throughput", "submit", "latency", "memory", "commands", "dispatch", "processes")}
    # the heading names the run most sections come from; a section from another run says so
    metas = [d["meta"] for d in res.values() if d and "meta" in d]
    most = max((sum(o.get("git") == m.get("git") for o in metas) for m in metas), default=0)
    meta = min((m for m in metas if sum(o.get("git") == m.get("git") for o in metas) == most),
               key=lambda m: m.get("date", ""), default=None)  # that run's first section
    out = [START, "", "## Results", "",
           versions(meta, res["throughput"], res["submit"], res["latency"], res["memory"]), ""]
    if meta:
        out += ["Command: `.venv/bin/python bench/run.py` (each measurement's exact driver command is in "
                "bench/results/*.json under `runs[].command`).", ""]
    out += ["### Goals", ""] + goals_section(res) + [""]
    sections = [("throughput", throughput_section), ("submit", submit_section), ("latency", latency_section),
                ("memory", memory_section), ("commands", commands_section), ("dispatch", dispatch_section),
                ("processes", processes_section)]
    for name, fn in sections:
        d = res[name]
        if d:
            body = fn(d)
            when = d.get("meta")
            if meta and when and when.get("git") != meta.get("git"):
                which = "a later" if when.get("date", "") > meta.get("date", "") else "an earlier"
                body[1:1] = ["", f"Measured {when['date']} with {run_of(when)} on {machine_of(when)}: {which} "
                                 f"run of this workload than the one in the heading above."]
            out += body + [""]
    out += [END]  # the plots' links stand after the block: the docs site includes it where they do not resolve
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--print", action="store_true", help="print instead of rewriting bench/README.md")
    args = parser.parse_args()
    text = render(args.results)
    if args.print or args.results.name == "quick":
        print(text)
        return
    readme = BENCH / "README.md"
    current = readme.read_text()
    if START in current:
        current = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: text, current, flags=re.S)
    else:
        current = current.rstrip() + "\n\n" + text + "\n"
    readme.write_text(current)
    print(f"wrote the tables into {readme}")


if __name__ == "__main__":
    main()
