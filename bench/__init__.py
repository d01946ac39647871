"""Benchmarks that print tables. Run them with `make bench` (or `python -m bench`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path


@contextmanager
def quiet(level: int = logging.ERROR) -> Iterator[None]:
    """Silence log lines up to `level` for the block only: a bench expects thousands of
    warnings, and its smoke test runs it inside the test suite, whose later tests read logs."""
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@contextmanager
def emulated(scratch: Path, collection: str) -> Iterator[dict[str, str]]:
    """The Firestore and Pub/Sub emulators running, this process's Google clients pointed at
    them, a results and a quarantine topic: yields the settings that point the function at them
    (the ledger's collection `collection`), as environment variables."""
    from tests.conftest import PROJECT
    from tests.support.emulators import emulator

    emulators = {"firestore": "FIRESTORE_EMULATOR_HOST", "pubsub": "PUBSUB_EMULATOR_HOST"}
    with ExitStack() as stack:
        hosts = {
            variable: stack.enter_context(emulator(name, scratch / f"{name}.log"))
            for name, variable in emulators.items()
        }
        stack.enter_context(environment(**hosts, GOOGLE_CLOUD_PROJECT=PROJECT))
        yield hosts | wired(collection)


def wired(collection: str) -> dict[str, str]:
    """With the emulators running (their *_EMULATOR_HOST set here): a results and a quarantine
    topic, and the settings that point the function at them and at a Firestore ledger in
    `collection`, as environment variables."""
    from tests.conftest import PROJECT
    from tests.support.pubsub import topic_with_subscription

    results, _ = topic_with_subscription("results")
    quarantined, _ = topic_with_subscription("quarantine")
    hosts = {name: os.environ[name] for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")}
    return hosts | {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "KFP_TRIGGER_LEDGER": f"firestore://{PROJECT}/{collection}",
        "KFP_TRIGGER_RESULTS": f"pubsub://{results}",
        "KFP_TRIGGER_QUARANTINE": f"pubsub://{quarantined}",
    }


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """These variables set for the block, and as they were after it."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds each of `repeat` calls took."""
    spent = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent
