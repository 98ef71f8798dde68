"""Summarize py-spy's collapsed stacks (``--format raw``): self and total time per function.

    .venv/bin/python -m bench.profile_summary bench/results/raw/profile/relay-16.txt [--top 30]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^)]*?):\d+\)$")


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` to ``file.py:func`` (line numbers merged)."""
    match = _LINE.search(frame)
    if not match:
        return frame
    func = frame[: match.start()]
    return f"{Path(match.group(1)).name}:{func}"


def summarize(path: Path, top: int = 30) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [frame_name(f) for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for name in set(frames):
            total[name] += n
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{100 * c / samples:5.1f}  {name}" for name, c in own.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * c / samples:5.1f}  {name}" for name, c in total.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarize(args.path, args.top))


if __name__ == "__main__":
    main()
