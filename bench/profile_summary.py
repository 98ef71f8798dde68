"""Summarize py-spy's collapsed stacks (``--format raw``): self and total time per function; or,
with ``--perf``, a ``perf record -g`` file: on-CPU samples split by layer (interpreter, PyAV and
FFmpeg's libraries, libc, each system call, other kernel work).

    .venv/bin/python -m bench.profile_summary bench/results/raw/profile/relay-16.txt [--top 30]
    .venv/bin/python -m bench.profile_summary --perf /tmp/prof/relay-w1-16.perf
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^)]*?):\d+\)$")
_SYSCALL = re.compile(r"\b(?:__x64_sys|__do_sys|__se_sys)_(\w+)")
_LIBRARIES = (("libpython", "interpreter"), ("/av/", "PyAV"), ("libav", "FFmpeg libraries"),
              ("libsw", "FFmpeg libraries"), ("libc.so", "libc"),
              ("lib-dynload", "stdlib C modules"), ("site-packages", "other C extensions"))


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` to ``file.py:func`` (line numbers merged)."""
    match = _LINE.search(frame)
    if not match:
        return frame
    func = frame[: match.start()]
    return f"{Path(match.group(1)).name}:{func}"


def where(frame: str) -> str:
    """The package part a frame's file belongs to (py-spy names files from their sys.path entry:
    ``trio``, ``relay/rtp``, ``relay/ingest.py``, ``threading.py``): self time by layer."""
    match = _LINE.search(frame)
    if not match:
        return "?"
    parts = match.group(1).split("/")
    return "/".join(parts[:2]) if parts[0] in ("relay", "web") else parts[0]


def summarize(path: Path, top: int = 30) -> str:
    own: Counter[str] = Counter()
    layers: Counter[str] = Counter()
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
            layers[where(stack.rsplit(";", 1)[-1])] += n
        for name in set(frames):
            total[name] += n
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{100 * c / samples:5.1f}  {name}" for name, c in own.most_common(top)]
    lines += ["", "self %  where"]
    lines += [f"{100 * c / samples:5.1f}  {name}" for name, c in layers.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * c / samples:5.1f}  {name}" for name, c in total.most_common(top)]
    return "\n".join(lines)


def layer(frames: list[tuple[str, str]]) -> str:
    """A perf sample's layer from its stack (leaf first, as ``(symbol, dso)``): the system call
    it is in, else other kernel work, else the user-space library of its leaf."""
    kernel = [sym for sym, dso in frames if dso == "[kernel.kallsyms]"]
    if kernel:
        for sym in kernel:
            match = _SYSCALL.search(sym)
            if match:
                return f"syscall {match.group(1)}"
        return "kernel, no syscall (page faults, interrupts, scheduling)"
    dso = frames[0][1] if frames else "?"
    return next((name for key, name in _LIBRARIES if key in dso), f"other: {Path(dso).name}")


def summarize_perf(path: Path) -> str:
    """On-CPU samples of a ``perf record -g`` file by layer, and how many each process took."""
    script = subprocess.run(["perf", "script", "-F", "comm,pid,ip,sym,dso", "-i", str(path)],
                            capture_output=True, text=True, check=True).stdout
    layers: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    for block in script.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines:
            continue
        processes[lines[0]] += 1
        frames = []
        for line in lines[1:]:
            sym, _, dso = line.rpartition(" (")
            frames.append((sym.split(" ", 1)[-1], dso.rstrip(")")))
        layers[layer(frames)] += 1
    samples = sum(layers.values())
    lines = [f"{samples} on-CPU samples", "", "%      layer"]
    lines += [f"{100 * c / samples:5.1f}  {name}" for name, c in layers.most_common()]
    lines += ["", "%      process (comm pid)"]
    lines += [f"{100 * c / samples:5.1f}  {name}" for name, c in processes.most_common()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--perf", action="store_true", help="PATH is a perf record -g file")
    args = parser.parse_args()
    print(summarize_perf(args.path) if args.perf else summarize(args.path, args.top))


if __name__ == "__main__":
    main()
