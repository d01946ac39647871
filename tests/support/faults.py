"""Seeded fault injection for the ports, after Temporal's persistence fault injection.

`Faults(rate, seed).wrap(port, "ledger")` returns a proxy whose calls fail at `rate`, each time
with one of these kinds, as a cloud API would:

- `timeout`, `unavailable`, `quota`: TransientError before the call (nothing happened);
- `done-but-timeout`: the call is made, *then* TransientError (it happened; the caller cannot
  know that, exactly as when a response is lost).

Only the port's methods that talk to the outside are wrapped (see FAULTY); everything else
passes through. `injected` counts what was injected, by `port.method:kind`.

`Crasher(...)`, injected as `Services.crash`, makes the named crash points
(functions/service/crashpoints.py) fire in this process: the call stops there with `Crash`, which
no handler catches, and `answer(...)` reports it as "no answer", as the platform sees an
instance that died.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from events.errors import TransientError
from functions.service.records import Handled

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


class Crash(BaseException):
    """The instance died here: no handler catches it, nothing is answered."""


class Crasher:
    """A crash hook for `Services.crash`: it raises `Crash` at each point where `fire(point)` says
    so, while `enabled`; `crashes` counts where it did."""

    def __init__(self, fire: Callable[[str], bool], crashes: Counter[str] | None = None) -> None:
        self.fire = fire
        self.crashes = crashes if crashes is not None else Counter()
        self.enabled = True

    def __call__(self, point: str) -> None:
        if self.enabled and self.fire(point):
            self.crashes[point] += 1
            raise Crash(point)


def answer(target: Callable[[], Handled]) -> int | None:
    """The status the platform sees: None when the instance died, 503 for a transient failure."""
    from functions.targets import status_of

    try:
        return status_of(target())
    except TransientError:
        return 503
    except Crash:
        return None
