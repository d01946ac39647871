"""Cloud Functions and Pub/Sub push, on this machine: instances and a delivery relay.

- `Instance`: one functions-framework process serving one target, one request at a time
  (THREADS=1: Cloud Functions' default concurrency of 1), in its own process group so that
  `kill()` SIGKILLs it whole, mid-request if it is busy; `replace()` starts a fresh one (a cold
  start) on a new port, as the platform replaces a crashed instance.
- `Relay`: push delivery to a pool of instances with Pub/Sub's semantics (research/gcp-events.md
  "Delivery semantics"): at least once; redelivered on any non-2xx answer, on a timeout (the ack
  deadline) and on a dropped connection, with exponential backoff between a minimum and a maximum
  (a push subscription's retry policy, scaled down to seconds); now and then delivered again after
  it was acknowledged (a duplicate); and in no particular order (each delivery is due at a
  jittered moment and a free instance takes any due one). Each instance takes the next delivery
  only when it has answered the last, so a pool of N instances has N requests in flight.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support import free_port, functions_framework

READY_SECONDS = 120


@dataclass(frozen=True)
class Message:
    headers: dict[str, str]
    body: bytes
    path: str = "/"


class Instance:
    """functions-framework serving `target` from `source`, one request at a time."""

    def __init__(self, target: str, source: str, env: dict[str, str], logs: Path) -> None:
        self.target, self.source, self.env, self.logs = target, source, env, logs
        self.busy = False
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.started = 0

    def start(self) -> Instance:
        port = free_port()
        command = functions_framework(self.target, port)
        command[command.index("--source") + 1] = self.source
        env = {**self.env, "THREADS": "1", "WORKERS": "1"}
        self.started += 1
        with open(self.logs / f"{self.target}-{port}.log", "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                requests.get(self.url, timeout=5)
                return self
            except requests.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{self.target} did not start: see {self.logs}") from None
                time.sleep(0.1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def replace(self) -> None:
        self.kill()
        self.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Tally:
    """What a relay did: deliveries made, duplicates sent after an ack, redeliveries and why."""

    deliveries: int = 0
    acked: int = 0
    duplicates: int = 0
    redelivered: Counter[str] = field(default_factory=Counter)  # by cause: status, timeout, dropped
    replaced: int = 0  # instances found dead and replaced


@dataclass(order=True)
class _Due:
    due: float
    number: int
    message: Message = field(compare=False)
    attempt: int = field(compare=False, default=0)


class Relay:
    """Pub/Sub push to a pool of instances; see the module docstring."""

    def __init__(
        self,
        instances: list[Instance],
        *,
        seed: int,
        duplicate_rate: float = 0.0,
        jitter: float = 0.5,
        timeout: float = 30.0,
        backoff: tuple[float, float] = (0.1, 3.0),
    ) -> None:
        self.instances, self.rng = instances, random.Random(seed)
        self.duplicate_rate, self.jitter, self.timeout, self.backoff = (
            duplicate_rate,
            jitter,
            timeout,
            backoff,
        )
        self.tally = Tally()
        self._queue: list[_Due] = []
        self._numbers = itertools.count()
        self._ready = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self._workers = [threading.Thread(target=self._serve, args=(i,), daemon=True) for i in instances]

    def __enter__(self) -> Relay:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)

    def publish(self, message: Message, delay: float = 0.0, attempt: int = 0) -> None:
        due = time.monotonic() + delay + self.rng.uniform(0, self.jitter)
        with self._ready:
            heapq.heappush(self._queue, _Due(due, next(self._numbers), message, attempt))
            self._ready.notify()

    def pending(self) -> int:
        with self._ready:
            return len(self._queue) + self._in_flight

    def settle(self, deadline: float) -> bool:
        """Wait until nothing is queued or in flight (True), or `deadline` (monotonic) passed."""
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.1)
        return False

    def _next(self) -> _Due | None:
        with self._ready:
            while not self._stopping:
                now = time.monotonic()
                if self._queue and self._queue[0].due <= now:
                    self._in_flight += 1
                    return heapq.heappop(self._queue)
                wait = self._queue[0].due - now if self._queue else 0.5
                self._ready.wait(timeout=min(wait, 0.5))
            return None

    def _serve(self, instance: Instance) -> None:
        while (item := self._next()) is not None:
            try:
                cause = self._deliver(instance, item.message)
            finally:
                with self._ready:
                    self._in_flight -= 1
            if cause:
                self.tally.redelivered[cause] += 1
                low, high = self.backoff
                delay = min(high, low * 2**item.attempt) * self.rng.uniform(0.5, 1.0)
                self.publish(item.message, delay, item.attempt + 1)
            elif self.rng.random() < self.duplicate_rate:
                self.tally.duplicates += 1
                self.publish(item.message, self.rng.uniform(0, 5), 0)
            if not instance.alive():  # killed while it served: the platform starts another
                self.tally.replaced += 1
                instance.replace()

    def _deliver(self, instance: Instance, message: Message) -> str:
        """Deliver once: "" when acknowledged, else why it will be delivered again."""
        instance.busy = True
        self.tally.deliveries += 1
        try:
            answer = requests.post(
                instance.url + message.path, data=message.body, headers=message.headers, timeout=self.timeout
            )
        except requests.Timeout:
            return "timeout"
        except requests.ConnectionError:
            return "dropped"
        finally:
            instance.busy = False
        if answer.status_code >= 300:
            return f"status {answer.status_code}"
        self.tally.acked += 1
        return ""


class Killer:
    """SIGKILL a random busy instance of `instances` every `every` seconds (on average) while
    running; the relay's worker for it sees the dropped connection and replaces it."""

    def __init__(self, instances: list[Instance], every: float, seed: int) -> None:
        self.instances, self.every, self.rng = instances, every, random.Random(seed)
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.expovariate(1 / self.every)):
            busy = [instance for instance in self.instances if instance.busy and instance.alive()]
            if busy:
                self.rng.choice(busy).kill()
                self.kills += 1
