"""Fuzz the way in: envelope parsing, decoding and routing of arbitrary requests.

    python -m bench.fuzz [--seconds 60]

The target is everything `handle_event` does with a request before the ledger: `parse_http`
(headers and body) → `decode` → `route`, on the test routes. Only the project's own validation
errors (`EnvelopeError`, `KfpTriggerError` and its kin) may escape; anything else is a crash,
printed with the input that caused it.

Two engines, each for the given time: hypothesis (structure-aware: golden events with fields
replaced by arbitrary JSON, arbitrary headers, arbitrary bytes) and, if it is installed
(`pip install atheris`), atheris (coverage-guided, libFuzzer, byte-level mutations of the same
golden seeds) in a process of its own. The table says how many inputs each tried and how many
crashed.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events.decoders import decode
from events.envelope import EnvelopeError, parse_http
from events.errors import KfpTriggerError
from events.model import Ignored
from events.router import Router
from events.routes import load_routes
from tests.support import ROUTES, binary, cases, structured

ALLOWED = (EnvelopeError, KfpTriggerError)
HEADER_NAMES = ("ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time", "ce-subject", "content-type")
NASTY = (
    "\ud800",
    "\udfff",
    "\x00",
    "\r\n",
    "\x1b[31m",
    "\u202e",
    "\u200b",
    "\ufeff",
    "../",
    "/",
    "\\",
    "%",
    "{0}",
)
CONTENT_TYPES = ("application/json", "application/cloudevents+json", "text/plain", "application/xml", "")


@dataclass
class Outcome:
    engine: str
    inputs: int = 0
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def seeds() -> list[tuple[dict[str, str], bytes]]:
    """Every golden event, in both content modes."""
    found: list[tuple[dict[str, str], bytes]] = []
    for case in cases():
        if not case.legacy:
            attributes, data = case.cloudevent()
            found += [binary(attributes, data), structured(attributes, data)]
    return found


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value can be put (keys of objects, items of lists)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found += [(*prefix, key), *paths(value, (*prefix, key))]
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += [(*prefix, index), *paths(value, (*prefix, index))]
    return found


def target(router: Router) -> Callable[[dict[str, str], bytes], None]:
    def run(headers: dict[str, str], body: bytes) -> None:
        try:
            attributes, data = parse_http(headers, body)
            decoded = decode(attributes, data)
            if not isinstance(decoded, Ignored):
                router.route(decoded)
        except ALLOWED:
            pass

    return run


def _router() -> Router:
    return Router(load_routes(ROUTES.read_text()).rules)


def with_hypothesis(seconds: float, rounds: int | None = None) -> Outcome:
    """Generate inputs for `seconds` (or for `rounds` rounds of 200, whichever is given)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    outcome = Outcome("hypothesis")
    run = target(_router())
    golden = seeds()
    nasty = st.sampled_from(NASTY) | st.text(max_size=3)
    texts = st.text(st.characters(exclude_categories=[])) | st.lists(nasty, max_size=5).map("".join)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=20,
    )

    @st.composite
    def mutated(draw: Any) -> tuple[dict[str, str], bytes]:
        """A golden event with one to three of its fields (at any depth) replaced."""
        headers, body = draw(st.sampled_from(golden))
        headers = dict(headers)
        document = json.loads(body)
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths(document)))
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = draw(json_values)
        if draw(st.booleans()):
            headers[draw(st.sampled_from(HEADER_NAMES))] = draw(st.text(max_size=40))
        return headers, json.dumps(document).encode()

    arbitrary = st.tuples(
        st.dictionaries(st.sampled_from(HEADER_NAMES), st.text(max_size=60), max_size=7),
        st.binary(max_size=2000),
    )

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(mutated(), arbitrary))
    def one(request: tuple[dict[str, str], bytes]) -> None:
        outcome.inputs += 1
        try:
            run(*request)
        except Exception:
            outcome.crashes.append(f"{request!r:.300}\n{traceback.format_exc(limit=-3)}")

    started = time.monotonic()
    done = 0
    while (done < rounds) if rounds is not None else (time.monotonic() - started < seconds):
        one()
        done += 1
    outcome.seconds = time.monotonic() - started
    return outcome


def _atheris_main(seconds: float) -> None:  # runs in its own process: libFuzzer exits it
    import atheris

    with atheris.instrument_imports():
        import events.decoders
        import events.envelope
        import events.router  # noqa: F401
    run = target(_router())
    golden = seeds()

    def one(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        headers, body = golden[provider.ConsumeIntInRange(0, len(golden) - 1)]
        headers = dict(headers)
        if provider.ConsumeBool():
            headers[HEADER_NAMES[provider.ConsumeIntInRange(0, len(HEADER_NAMES) - 1)]] = (
                provider.ConsumeUnicode(40)
            )
        rest = provider.ConsumeBytes(provider.remaining_bytes())
        if rest:
            cut = random.Random(len(rest)).randint(0, len(body))
            body = body[:cut] + rest + body[cut + len(rest) // 2 :]
        run(headers, body)

    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds)}", "-print_final_stats=1"], one)
    atheris.Fuzz()


def with_atheris(seconds: float) -> Outcome | None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return None
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.fuzz", "--atheris-child", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    outcome = Outcome("atheris", seconds=time.monotonic() - started)
    for line in done.stderr.splitlines():
        if line.startswith("stat::number_of_executed_units:"):
            outcome.inputs = int(line.split(":")[-1])
    if done.returncode != 0:
        outcome.crashes.append(done.stderr[-3000:])
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="per engine (default 60)")
    parser.add_argument("--atheris-child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.atheris_child is not None:
        _atheris_main(args.atheris_child)
        return 0
    outcomes = [with_hypothesis(args.seconds)]
    if (fuzzed := with_atheris(args.seconds)) is not None:
        outcomes.append(fuzzed)
    print("\nFuzzing parse_http → decode → route (bench/fuzz.py)\n")
    print("| engine | inputs | seconds | crashes |")
    print("|---|---|---|---|")
    for outcome in outcomes:
        print(f"| {outcome.engine} | {outcome.inputs:,} | {outcome.seconds:.0f} | {len(outcome.crashes)} |")
    if len(outcomes) == 1:
        print("\n(atheris is not installed: `pip install atheris` adds the coverage-guided engine)")
    for outcome in outcomes:
        for crash in outcome.crashes[:5]:
            print(f"\n{outcome.engine} crash:\n{crash}")
    return 1 if any(outcome.crashes for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
