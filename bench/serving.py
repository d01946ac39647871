"""What a new instance pays, what each event costs over HTTP, and a burst: each figure beside its
baseline, measured in the same run.

1. Cold start: `import main` in a fresh interpreter, against `import functions_framework` alone
   and against Google's documented pattern (a function that imports the aiplatform SDK to
   submit). REPEATS fresh interpreters each; medians with the spread.
2. Per event over HTTP: `handle_event` (decode, route, claim on SQLite, a recording backend)
   against a no-op CloudEvent function, each served by functions-framework exactly as Cloud
   Functions runs it, the same client (CLIENTS keep-alive connections) sending the same finalize
   events: requests/s, p50 and p99 latency; REPEATS rounds each, medians.
3. Burst: BURST finalize events with 30% duplicates through the `handle_event` server: time,
   runs created, duplicate runs.
4. Memory: the serving processes' peak RSS (VmHWM) after the burst.

Linux only (it reads /proc). `python -m bench.serving`, or `make bench` for every benchmark.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support import storage_event

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5
REQUESTS = 2_000
CLIENTS = 4
BURST = 10_000
DUPLICATES = 0.3
ROUTES = ROOT / "tests" / "data" / "routes.yaml"


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{median * scale:,.{digits}f} ({low * scale:,.{digits}f}-{high * scale:,.{digits}f})"


# ---- 1. cold start ------------------------------------------------------------------------------


def import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def cold_start() -> dict[str, list[float]]:
    statements = {
        "import functions_framework": "import functions_framework",
        "import main (kfp-trigger)": "import main",
        "functions_framework + aiplatform SDK": (
            "import functions_framework; from google.cloud import aiplatform"
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(REPEATS):  # interleaved, so a busy moment hurts every variant alike
        for name, statement in statements.items():
            samples[name].append(import_seconds(statement))
    return samples


# ---- 2-4. over HTTP -----------------------------------------------------------------------------


def finalize(number: int) -> tuple[dict[str, str], bytes]:
    return storage_event("some-bucket", f"folder/part-{number}.csv", event_id=f"bench-{number}")


def start(target: str, state: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start functions-framework serving one target of bench/serving_app.py, configured like the
    deployed function (`settings`: KFP_TRIGGER_* and emulator variables on top); (process, url)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runs = state / "runs.txt"
    runs.touch()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KFP_TRIGGER_")},
        "PYTHONPATH": str(ROOT),
        "KFP_TRIGGER_ROUTES": str(ROUTES),
        "KFP_TRIGGER_STATE_DIR": str(state),
        "KFP_TRIGGER_AUTH": "none",
        "KFP_TRIGGER_LOG_FORMAT": "json",
        "BENCH_RUNS_FILE": str(runs),
        **settings,
    }
    command = [str(Path(sys.executable).parent / "functions-framework"), "--source", "bench/serving_app.py"]
    command += ["--target", target, "--port", str(port)]
    with open(state / f"{target}.log", "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


@contextmanager
def serving(target: str, state: Path) -> Iterator[tuple[str, int]]:
    """functions-framework serving one target of bench/serving_app.py; yields (url, pid)."""
    process, url = start(target, state)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((state / f"{target}.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def load(
    url: str, events: list[tuple[dict[str, str], bytes]], clients: int = CLIENTS
) -> tuple[float, list[float], list[int]]:
    """Send every event once over `clients` keep-alive connections: (seconds, latencies, statuses)."""
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    shares = [events[n::clients] for n in range(clients)]

    def client(share: list[tuple[dict[str, str], bytes]]) -> None:
        mine, codes = [], []
        with requests.Session() as session:
            for headers, body in share:
                started = time.perf_counter()
                codes.append(session.post(url, data=body, headers=headers, timeout=60).status_code)
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            statuses.extend(codes)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, statuses


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    """The largest VmHWM among the process and its children (gunicorn's master and worker)."""
    pids = [pid]
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(status.parent.name))
    peaks = []
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


Figures = dict[str, dict[str, list[float]]]  # target → measure (rps, mean, p50, p99) → one per round


def per_event(clients: int) -> Figures:
    """Each target served in turn, round by round (a busy moment hurts every target alike), the
    same REQUESTS new finalize events sent over `clients` connections."""
    targets = ("noop", "two_commits", "read_two_commits", "handle_event")
    results: Figures = {t: {"rps": [], "mean": [], "p50": [], "p99": []} for t in targets}
    for round_ in range(REPEATS):
        for target in targets:
            figures = results[target]
            with tempfile.TemporaryDirectory() as scratch, serving(target, Path(scratch)) as (url, _):
                load(url, [finalize(-n - 1) for n in range(200)], clients)  # warm up
                events = [finalize(round_ * REQUESTS + n) for n in range(REQUESTS)]
                seconds, latencies, statuses = load(url, events, clients)
                assert set(statuses) == {200}, f"{target}: {sorted(set(statuses))}"
                figures["rps"].append(len(events) / seconds)
                figures["mean"].append(statistics.mean(latencies))
                figures["p50"].append(percentile(latencies, 0.5))
                figures["p99"].append(percentile(latencies, 0.99))
    return results


def against_floor(figures: Figures, measure: str, floor_target: str = "two_commits") -> float:
    """handle_event's `measure` over the floor's, the median of the rounds' ratios."""
    real, floor = figures["handle_event"][measure], figures[floor_target][measure]
    return statistics.median(mine / theirs for mine, theirs in zip(real, floor, strict=True))


def burst() -> dict[str, float]:
    unique = int(BURST * (1 - DUPLICATES))
    events = [finalize(n % unique) for n in range(BURST)]
    with tempfile.TemporaryDirectory() as scratch, serving("handle_event", Path(scratch)) as (url, pid):
        seconds, _, statuses = load(url, events)
        runs = (Path(scratch) / "runs.txt").read_text().splitlines()
        rss = peak_rss_mb(pid)
    return {
        "seconds": seconds,
        "answered_2xx": sum(status < 300 for status in statuses),
        "expected_runs": unique,
        "runs": len(runs),
        "duplicate_runs": len(runs) - len(set(runs)),
        "peak_rss_mb": rss,
    }


MEAN_BOUND, P99_BOUND = 1.35, 1.5  # handle_event against the floor, measured in the same run


def http_table(figures: Figures, clients: int) -> None:
    """The three targets over HTTP at `clients` connections, and handle_event's bounds against
    the floor (the median of the rounds' ratios)."""
    shape = "one request at a time" if clients == 1 else f"{clients} concurrent clients"
    print(f"| over HTTP, {shape}, {REQUESTS:,} finalize events | requests/s | mean ms | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, target in (
        ("no-op CloudEvent function", "noop"),
        ("floor: the two SQLite commits of a new event, nothing else", "two_commits"),
        ("the same with its one read: every ledger round trip of a new event", "read_two_commits"),
        ("handle_event (decode, route, claim, record)", "handle_event"),
    ):
        row = figures[target]
        print(
            f"| {name} | {spread(row['rps'])} | {spread(row['mean'], 1000, 2)} "
            f"| {spread(row['p50'], 1000, 2)} | {spread(row['p99'], 1000, 2)} |"
        )
    mean, tail = against_floor(figures, "mean"), against_floor(figures, "p99")
    print(f"\ntarget ({shape}): mean ≤ {MEAN_BOUND}x the floor's → {mean:.2f}x {verdict(mean <= MEAN_BOUND)}")
    print(f"target ({shape}): p99 ≤ {P99_BOUND}x the floor's → {tail:.2f}x {verdict(tail <= P99_BOUND)}")
    mean, tail = (
        against_floor(figures, "mean", "read_two_commits"),
        against_floor(figures, "p99", "read_two_commits"),
    )
    print(f"beside every round trip of a new event ({shape}): mean {mean:.2f}x, p99 {tail:.2f}x\n")


def verdict(passed: bool) -> str:
    return "pass" if passed else "MISS"


def main() -> None:
    print(
        f"\nServing (bench/serving.py): {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}\n"
    )
    cold = cold_start()
    base, ours, sdk = (statistics.median(values) for values in cold.values())
    print("| cold import, fresh interpreter | ms | x vs functions_framework |")
    print("|---|---|---|")
    for (name, values), median in zip(cold.items(), (base, ours, sdk), strict=True):
        print(f"| {name} | {spread(values, 1000)} | {median / base:.2f} |")
    print(
        f"\ntarget: import main ≤ 1.3x import functions_framework → {ours / base:.2f}x "
        f"{verdict(ours <= 1.3 * base)}\n"
    )

    for clients in (1, CLIENTS):
        http_table(per_event(clients), clients)

    outcome = burst()
    print(f"| burst: {BURST:,} finalize events, {DUPLICATES:.0%} duplicates | value | target |")
    print("|---|---|---|")
    print(f"| time | {outcome['seconds']:.1f} s ({BURST / outcome['seconds']:,.0f} events/s) | |")
    print(f"| answered 2xx | {outcome['answered_2xx']:,} | all |")
    exact = outcome["runs"] == outcome["expected_runs"]
    print(
        f"| runs created | {outcome['runs']:,} of {outcome['expected_runs']:,} expected "
        f"| exact: {verdict(exact)} |"
    )
    print(f"| duplicate runs | {outcome['duplicate_runs']} | 0: {verdict(outcome['duplicate_runs'] == 0)} |")
    rss = outcome["peak_rss_mb"]
    print(f"| peak RSS of the serving process | {rss:.0f} MB | < 128 MB: {verdict(rss < 128)} |")


if __name__ == "__main__":
    main()
