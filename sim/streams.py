"""Named random streams: common random numbers across topologies and engines.

Every source of randomness (a workload's arrivals, a service's service times, a
broker's latencies) gets its own generator seeded from (seed, replication,
name). The request-based and the event-based topology therefore see the same
arrivals and, service by service, the same service times; and the SimPy engine
and the vectorised fast path draw identical sequences because both go through
`Stream`, which generates in fixed-size blocks.
"""

from __future__ import annotations

import zlib

import numpy as np

from polybus.sim.distributions import Distribution

BLOCK = 4096


def generator(seed: int, replication: int, name: str) -> np.random.Generator:
    """The generator of stream `name` in replication `replication` of a run seeded `seed`."""
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, replication, key])))


class Stream:
    """Draws from one distribution with one generator, a block at a time.

    `next()` is the scalar path the SimPy engine uses (a list index, no NumPy
    call per draw); `take(n)` is the vector path of the fast engine. Both walk
    the same block sequence, so they yield the same numbers in the same order.
    """

    __slots__ = ("_arr", "_buf", "_i", "dist", "rng")

    def __init__(self, dist: Distribution, rng: np.random.Generator) -> None:
        self.dist = dist
        self.rng = rng
        self._arr = np.empty(0)
        self._buf: list[float] = []
        self._i = 0

    def _refill(self) -> None:
        self._arr = self.dist.sample(self.rng, BLOCK)
        self._buf = []
        self._i = 0

    def next(self) -> float:
        """The next draw."""
        if self._i >= len(self._arr):
            self._refill()
        if not self._buf:
            self._buf = self._arr.tolist()
        i = self._i
        self._i = i + 1
        return self._buf[i]

    def take(self, n: int) -> np.ndarray:
        """The next `n` draws as an array (same sequence as `n` calls of `next`)."""
        out = np.empty(n)
        filled = 0
        while filled < n:
            if self._i >= len(self._arr):
                self._refill()
            k = min(n - filled, len(self._arr) - self._i)
            out[filled : filled + k] = self._arr[self._i : self._i + k]
            self._i += k
            filled += k
        return out


class Streams:
    """The factory of named streams for one replication."""

    def __init__(self, seed: int, replication: int) -> None:
        self.seed = seed
        self.replication = replication

    def stream(self, name: str, dist: Distribution) -> Stream:
        """A fresh stream named `name` drawing from `dist`."""
        return Stream(dist, generator(self.seed, self.replication, name))

    def rng(self, name: str) -> np.random.Generator:
        """A raw generator for vectorised draws (device phases, routing choices)."""
        return generator(self.seed, self.replication, name)
