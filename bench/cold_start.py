"""Cold start to first answer on the production adapters (issue 19).

A new instance's first event pays for everything at once: the interpreter, functions-framework,
`import main`, the services built on first use (the Firestore client and its channel) and the
first round trips. So this times a fresh functions-framework process from its spawn to its first
answered finalize event, for `handle_event` with the Firestore ledger and Pub/Sub results and
quarantine (the emulators; a recording backend, so no engine is timed) and for the no-op
CloudEvent function, the baseline, interleaved REPEATS times; medians with the spread.

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
from bench.serving import finalize, spread, start, verdict

BOUND = 1.5  # issue 19: the first answer ≤ 1.5x the no-op function's


def first_answer(target: str, state: Path, number: int, **settings: str) -> float:
    """Seconds from spawning the server to its first 2xx answer to a new finalize event."""
    headers, body = finalize(10_000 + number)
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
    samples: dict[str, list[float]] = {"noop": [], "handle_event": []}
    with tempfile.TemporaryDirectory() as scratch, emulated(Path(scratch), "cold-start") as settings:
        for number in range(repeat):  # interleaved, so a busy moment hurts both alike
            for target in samples:
                with tempfile.TemporaryDirectory() as state:
                    given = settings if target == "handle_event" else {}
                    samples[target].append(first_answer(target, Path(state), number, **given))
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per target")
    options = parser.parse_args(argv)
    samples = measure(options.repeat)
    noop, ours = (statistics.median(samples[target]) for target in ("noop", "handle_event"))
    print("\nCold start to first answer (bench/cold_start.py): spawn → first finalize event answered\n")
    print("| fresh functions-framework process | ms | x vs no-op |")
    print("|---|---|---|")
    print(f"| no-op CloudEvent function | {spread(samples['noop'], 1000)} | 1.00 |")
    ratio = ours / noop
    print(
        "| handle_event, Firestore ledger, Pub/Sub sinks (emulators) "
        f"| {spread(samples['handle_event'], 1000)} | {ratio:.2f} |"
    )
    print(f"\ntarget: first answer ≤ {BOUND}x the no-op's → {ratio:.2f}x {verdict(ratio <= BOUND)}\n")


if __name__ == "__main__":
    main()
