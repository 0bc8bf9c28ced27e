"""Generate luasched's threaded front end from its asyncio one: luasched/_async -> luasched/_sync.

    python tools/unasync.py           # write luasched/_sync/*.py
    python tools/unasync.py --check   # exit 1, naming the first difference, if they are not in step

The I/O layer (transport, Scheduler, TaskHandle, Group, Processor) is written once, as asyncio
code; each line of it becomes a line of the sync code through the substitutions below (the
approach of httpcore's scripts/unasync.py). What truly differs between threads and an event
loop lives side by side in luasched/_backends (``aio.py`` and ``threads.py``, same names), and
the async code reaches it through the one import the first substitution swaps. A line whose
text starts with ``# unasync: `` becomes that text in the sync code (e.g. ``@property``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "luasched" / "_async"
TARGET = ROOT / "luasched" / "_sync"

#: (pattern, replacement): whole words only, applied in order to every line.
SUBSTITUTIONS = [
    (r"from \.\._backends import aio as backend", "from .._backends import threads as backend"),
    (r"import asyncio", "import threading"),
    (r"asyncio\.Event", "threading.Event"),
    (r"asyncio\.Lock", "threading.Lock"),
    (r"AsyncIterator", "Iterator"),
    (r"async def", "def"),
    (r"async with", "with"),
    (r"async for", "for"),
    (r"await ", ""),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
]
_COMPILED = [(re.compile(r"(?<![\w.])" + pattern + (r"(?!\w)" if pattern[-1].isalnum() else "")), replacement)
             for pattern, replacement in SUBSTITUTIONS]
_SYNC_ONLY = re.compile(r"^(\s*)# unasync: (.*)$")

HEADER = "# Generated from luasched/_async/{name} by tools/unasync.py: edit that file, then run the tool.\n"


def unasync_line(line: str, used: set[int] | None = None) -> str:
    """One line of async code as sync code."""
    only = _SYNC_ONLY.match(line)
    if only:
        return only.group(1) + only.group(2) + ("\n" if line.endswith("\n") else "")
    for index, (pattern, replacement) in enumerate(_COMPILED):
        line, n = pattern.subn(replacement, line)
        if n and used is not None:
            used.add(index)
    return line


def unasync_text(name: str, text: str, used: set[int] | None = None) -> str:
    """A whole module of async code as sync code, with the header that says where it came from."""
    return HEADER.format(name=name) + "".join(unasync_line(line, used) for line in text.splitlines(keepends=True))


def expected(source: Path = SOURCE, target: Path = TARGET) -> dict[Path, str]:
    """Every file of luasched/_sync as it must be, from luasched/_async."""
    used: set[int] = set()
    out = {target / path.name: unasync_text(path.name, path.read_text(encoding="utf-8"), used)
           for path in sorted(source.glob("*.py"))}
    unused = [SUBSTITUTIONS[i][0] for i in range(len(SUBSTITUTIONS)) if i not in used]
    if unused:  # a rule nothing needs any more is a rule that may one day rewrite the wrong thing
        raise SystemExit(f"unasync: substitutions no longer used: {', '.join(unused)}")
    return out


def check(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """What differs between luasched/_sync and what this tool would write (empty: in step)."""
    problems = []
    wanted = expected(source, target)
    for path, text in wanted.items():
        if not path.exists():
            problems.append(f"{_shown(path)} is missing")
            continue
        have = path.read_text(encoding="utf-8").splitlines()
        for number, (ours, theirs) in enumerate(zip(have, text.splitlines(), strict=False), start=1):
            if ours != theirs:
                problems.append(f"{_shown(path)}:{number}: is {ours.strip()!r}, "
                                f"generating gives {theirs.strip()!r}")
                break
        else:
            if len(have) != len(text.splitlines()):
                problems.append(f"{_shown(path)}: {len(have)} lines, generating gives "
                                f"{len(text.splitlines())}")
    extra = set(target.glob("*.py")) - set(wanted)
    problems += [f"{_shown(p)} has no source in {_shown(source)}" for p in sorted(extra)]
    return problems


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        problems = check()
        for problem in problems:
            print(f"unasync --check: {problem}", file=sys.stderr)
        if problems:
            print("unasync --check: luasched/_sync is out of step: run python tools/unasync.py", file=sys.stderr)
            return 1
        print("unasync --check: luasched/_sync is in step with luasched/_async")
        return 0
    TARGET.mkdir(exist_ok=True)
    for path, text in expected().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
