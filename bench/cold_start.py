"""Cold start to first answer on the production adapters.

A new instance's first event pays for everything at once: the interpreter, functions-framework,
`import main`, the services built on first use (the routes and their pipelines, the Firestore
client and its channel) and the first round trips. So this times a fresh functions-framework
process from its spawn to its first answered finalize event, for the no-op CloudEvent function
(the baseline) and for `handle_event` with the Firestore ledger and Pub/Sub results and
quarantine (the emulators; a recording backend, so no engine is timed), on two routes files:

- the test routes (tests/data/routes.yaml), whose pipeline is a Python source compiled at load;
- the example routes as `kfp-trigger deploy source` ships them: their real pipeline
  (pipelines/examples/survey.py) compiled into packages/ and checked by its sha256 at load, the
  event one that runs it.

Interleaved REPEATS times; medians with the spread.

    python -m bench.cold_start [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench import emulated
from bench.serving import ROOT, finalize, spread, start, verdict
from tests.support import storage_event

BOUND = 1.5  # the first answer ≤ 1.5x the no-op function's (test routes)
SHIPPED_BOUND = 1.3  # the example routes' real pipeline, shipped compiled: ≤ 1.3x
EXAMPLE = ROOT / "deploy" / "routes.example.yaml"
TARGETS = ("noop", "handle_event", "shipped")  # shipped: handle_event on the shipped example routes


def ship_example(folder: Path) -> Path:
    """The example routes and packages as `deploy source` writes them into its archive."""
    from functions.cli.archive import shipped_routes
    from pipelines import catalog

    text, packages = shipped_routes(EXAMPLE, catalog.load(EXAMPLE, folder / "compiled"))
    for name, data in packages.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "routes.yaml").write_bytes(text)
    return folder / "routes.yaml"


def landed(number: int) -> tuple[dict[str, str], bytes]:
    """A finalize event that the example route `survey-responses-landed` runs."""
    name = f"responses/tenant-{number}/2026-12-01/_SUCCESS"
    return storage_event("acme-survey-landing", name, event_id=f"cold-{number}")


def first_answer(target: str, state: Path, number: int, **settings: str) -> float:
    """Seconds from spawning the server to its first 2xx answer to a new finalize event."""
    shipped = target == "shipped"
    headers, body = landed(number) if shipped else finalize(10_000 + number)
    target = "handle_event" if shipped else target
    began = time.perf_counter()
    process, url = start(target, state, **settings)
    try:
        while True:
            try:
                answer = requests.post(url, data=body, headers=headers, timeout=60)
                break
            except requests.ConnectionError:
                if process.poll() is not None:
                    raise RuntimeError((state / f"{target}.log").read_text()[-2000:]) from None
                time.sleep(0.005)
        elapsed = time.perf_counter() - began
        if answer.status_code >= 300:
            raise RuntimeError(f"{target}: {answer.status_code} {answer.text[:300]}")
        return elapsed
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(repeat: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {target: [] for target in TARGETS}
    with tempfile.TemporaryDirectory() as scratch, emulated(Path(scratch), "cold-start") as settings:
        shipped = {"KFP_TRIGGER_ROUTES": str(ship_example(Path(scratch)))}
        given = {"noop": {}, "handle_event": settings, "shipped": settings | shipped}
        for number in range(repeat):  # interleaved, so a busy moment hurts all alike
            for target in samples:
                with tempfile.TemporaryDirectory() as state:
                    samples[target].append(first_answer(target, Path(state), number, **given[target]))
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per target")
    options = parser.parse_args(argv)
    samples = measure(options.repeat)
    noop, ours, shipped = (statistics.median(samples[target]) for target in TARGETS)
    print("\nCold start to first answer (bench/cold_start.py): spawn → first finalize event answered\n")
    print("| fresh functions-framework process | ms | x vs no-op |")
    print("|---|---|---|")
    print(f"| no-op CloudEvent function | {spread(samples['noop'], 1000)} | 1.00 |")
    rows = {
        "handle_event, test routes (a source compiled at load), Firestore ledger, Pub/Sub sinks": ours,
        "handle_event, example routes shipped (real pipeline, compiled package + sha256), same": shipped,
    }
    for (label, median), target in zip(rows.items(), ("handle_event", "shipped"), strict=True):
        print(f"| {label} | {spread(samples[target], 1000)} | {median / noop:.2f} |")
    print()
    for name, ratio, bound in (
        ("test routes", ours / noop, BOUND),
        ("shipped", shipped / noop, SHIPPED_BOUND),
    ):
        print(f"target: {name} ≤ {bound}x the no-op's first answer → {ratio:.2f}x {verdict(ratio <= bound)}")
    print()


if __name__ == "__main__":
    main()
