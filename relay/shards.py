"""Which streams a process runs: a stable hash of each stream's name picks its shard (one of N
machines, ``--shard I/N``) and, within the shard, its worker (one of W media processes on the
machine, ``--workers W``).

The hash is CRC-32 of the name's UTF-8 bytes: the same on every machine, Python version and run
(Python's ``hash()`` is salted per process). The shard is ``crc % N`` and the worker
``(crc // N) % W``, so the worker does not depend on the bits that chose the shard: with
``crc % W`` every stream of shard 0 of 2 would land on the even workers only.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace

from relay.config import Config
from relay.errors import ConfigError

MAX_SHARDS = 4096
MAX_WORKERS = 256
_SHARD = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]*-)?([0-9]{1,4})/([0-9]{1,4})")
"""``I/N``, where I may end a StatefulSet pod name (``relay-3/4``: the ordinal after the last -)."""


def name_hash(name: str) -> int:
    """The stable hash every assignment is made from."""
    return zlib.crc32(name.encode())


@dataclass(frozen=True, slots=True)
class Assignment:
    """One process's part of the streams: shard ``shard`` of ``shards``, worker ``worker`` of
    ``workers`` within it. The default owns every stream."""

    shard: int = 0
    shards: int = 1
    worker: int = 0
    workers: int = 1

    def owns(self, name: str) -> bool:
        """Whether the stream ``name`` runs in this process."""
        crc = name_hash(name)
        return (crc % self.shards == self.shard
                and (crc // self.shards) % self.workers == self.worker)

    def place(self, name: str) -> tuple[int, int]:
        """The (shard, worker) that runs the stream ``name``."""
        crc = name_hash(name)
        return crc % self.shards, (crc // self.shards) % self.workers

    def of_worker(self, worker: int) -> Assignment:
        return replace(self, worker=worker)

    def select(self, config: Config) -> Config:
        """``config`` with only the streams this process runs."""
        return replace(config, streams=tuple(s for s in config.streams if self.owns(s.name)))


EVERY_STREAM = Assignment()
"""One process for the whole config (``relay pull``, ``demo``, ``run --workers 1``)."""


def parse_shard(text: str, where: str = "--shard") -> tuple[int, int]:
    """``I/N`` (or ``POD-NAME-I/N``) to (I, N), 0 <= I < N <= ``MAX_SHARDS``.

    Raises:
        ConfigError: one line naming ``where`` and what is wrong.
    """
    match = _SHARD.fullmatch(text)
    if match is None:
        raise ConfigError(f"{where}: expected I/N (e.g. 0/4, or a StatefulSet pod name such as "
                          f"relay-0/4), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if not 0 < count <= MAX_SHARDS:
        raise ConfigError(f"{where}: N must be 1-{MAX_SHARDS}, got {count}")
    if index >= count:
        raise ConfigError(f"{where}: I must be 0-{count - 1} for N={count}, got {index}")
    return index, count


def check_workers(count: int, where: str = "--workers") -> int:
    """A worker count, 1-``MAX_WORKERS``.

    Raises:
        ConfigError: out of range.
    """
    if not 0 < count <= MAX_WORKERS:
        raise ConfigError(f"{where}: must be 1-{MAX_WORKERS}, got {count}")
    return count
