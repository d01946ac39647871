"""Seeded fault injection for the ports, after Temporal's persistence fault injection.

`Faults(rate, seed).wrap(port, "ledger")` returns a proxy whose calls fail at `rate`, each time
with one of these kinds, as a cloud API would:

- `timeout`, `unavailable`, `quota`: TransientError before the call (nothing happened);
- `done-but-timeout`: the call is made, *then* TransientError (it happened; the caller cannot
  know that, exactly as when a response is lost).

Only the port's methods that talk to the outside are wrapped (see FAULTY); everything else
passes through. `injected` counts what was injected, by `port.method:kind`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from events.errors import TransientError

KINDS = ("timeout", "unavailable", "quota", "done-but-timeout")
FAULTY = {
    "backend": frozenset({"submit", "find", "status"}),
    "ledger": frozenset(
        {"claim", "mark_submitted", "release", "finish", "begin_publish", "mark_published", "get", "record"}
    ),
    "sink": frozenset({"publish"}),
}


class Faults:
    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.calls = 0
        self.enabled = True

    def wrap(self, target: Any, port: str, name: str = "") -> Any:
        """A proxy of `target` (a `port`: backend, ledger or sink) that fails at the rate."""
        return _Faulty(self, target, name or port, FAULTY[port])

    def draw(self) -> str | None:
        if not self.enabled:
            return None
        self.calls += 1  # calls made while faults are on
        if self.random.random() >= self.rate:
            return None
        return self.random.choice(KINDS)


class _Faulty:
    def __init__(self, faults: Faults, target: Any, name: str, methods: frozenset[str]) -> None:
        self._faults, self._target, self._name, self._methods = faults, target, name, methods

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._target, attribute)
        if attribute not in self._methods:
            return value
        return self._failing(attribute, value)

    def _failing(self, attribute: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            kind = self._faults.draw()
            if kind is None:
                return method(*args, **kwargs)
            self._faults.injected[f"{self._name}.{attribute}:{kind}"] += 1
            if kind == "done-but-timeout":
                method(*args, **kwargs)
            raise TransientError(f"injected {kind} in {self._name}.{attribute}")

        return call
