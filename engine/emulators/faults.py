"""What every emulator's fault plan shares: the queue, the counters and the seeded draws.

A fault fires on its ``skip + 1``-th match (then on the following ones until ``times`` have
fired), with ``probability`` drawn from a generator seeded for replay; each emulator adds how a
fault matches and what it does.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Generic, Protocol, TypeVar


class Counted(Protocol):
    """The counters a fault carries."""

    seen: int
    fired: int
    skip: int
    probability: float

    @property
    def exhausted(self) -> bool: ...


F = TypeVar("F", bound=Counted)


class FaultQueue(Generic[F]):
    """The faults waiting to fire, in the order they were added (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[F] = []
        self._random = random.Random(0)
        self.history: list[tuple[Any, Any, F]] = []
        """``(what, where, fault)`` for every fault fired, oldest first."""

    def _fires(self, fault: F, what: Any, where: Any) -> bool:
        """Count a match of ``fault`` (under the lock); True when it fires now."""
        fault.seen += 1
        if fault.seen <= fault.skip:
            return False
        if fault.probability < 1 and self._random.random() >= fault.probability:
            return False
        fault.fired += 1
        self.history.append((what, where, fault))
        return True

    def seed(self, value: int) -> None:
        """Seed the generator that ``probability`` draws from (it starts seeded with 0)."""
        with self._lock:
            self._random.seed(value)

    def clear(self) -> None:
        """Remove every fault that has not fired yet (the history is kept)."""
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> list[F]:
        """Faults that may still fire."""
        with self._lock:
            return [f for f in self._faults if not f.exhausted]
