"""Filter matching stays linear (issue 20): the router's cost per event against the worst
filters routes.yaml can write, as the value the sender chose grows from 1 KB.

Two routes, each as hard to refuse as we could make it:
- a message route whose data field is compared with every comparator at once: 64 near-miss
  equalities (each as long as the value, differing in its last character, so every comparison
  reads all of it), a prefix and a suffix one character short of the whole value, a `not` of
  the same list, an `exists`, and a text range on an attribute;
- a storage route whose pattern is the one that took Python's backtracking `re` 88 s on a 1 KB
  name (`responses/{tenant}-{region}-{date}-*.csv`, on RE2 now), with a name filter beside it.

Each value size runs `--events` matches; the table gives µs per event and per KB of the value.
Linear means the cost per KB does not grow with the value (it falls while fixed costs dominate);
a quadratic matcher's would double with each doubling. Target: the cost per KB at every size
≤ 1.5x its figure at the smallest.

    python -m bench.filters [--events 2000] [--sizes 1,2,4,8,16]   (KB)
"""

from __future__ import annotations

import argparse
import json
import time

from events.router import Router
from events.routes import load_routes
from tests.unit.test_router import message_event, object_event

BOUND = 1.5
OPTIONS = 64


def routes(size: int) -> str:
    """routes.yaml with the worst filters for values of `size` bytes."""
    value = "a" * size
    near = [value[:-1] + chr(ord("b") + n % 20) + str(n) for n in range(OPTIONS)]  # same length and more
    worst = {
        "exists": True,
        "prefix": value[:-1],
        "suffix": value[1:],
        "not": near,
    }
    return json.dumps(
        {
            "pipelines": {"p": {"source": "m:f"}},
            "routes": [
                {
                    "name": "worst-message",
                    "when": {
                        "pubsub": {
                            "topic": "events",
                            "attributes": {"version": {"gte": 2, "lt": 10**12}},
                            "data": {"field": [*near, worst]},
                        }
                    },
                    "run": {"pipeline": "p"},
                },
                {
                    "name": "worst-object",
                    "when": {
                        "storage": {
                            "bucket": "landing",
                            "object": "responses/{tenant}-{region}-{date}-*.csv",
                            "name": {"not": {"suffix": value}, "prefix": "responses/"},
                        }
                    },
                    "run": {"pipeline": "p"},
                },
            ],
        }
    )


def per_event_us(size: int, events: int) -> tuple[float, float]:
    """µs per message and per object event whose chosen value is `size` bytes (both refused by
    the last comparator, after every other has read the whole value)."""
    router = Router(load_routes(routes(size)).rules)
    message = message_event({"field": "a" * size + "z"}, {"version": "3"})
    name = "responses/" + "-".join("t" * (size // 4) for _ in range(4)) + ".csv!"  # no match, late
    stored = object_event(name)
    spent = []
    for event in (message, stored):
        (decision,) = router.route(event).decisions  # warm, and the decision is a refusal
        assert not hasattr(decision, "run_key"), decision
        started = time.perf_counter()
        for _ in range(events):
            router.route(event)
        spent.append((time.perf_counter() - started) / events * 1e6)
    return spent[0], spent[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--sizes", default="1,2,4,8,16", help="value sizes in KB, comma-separated")
    options = parser.parse_args(argv)
    sizes = [int(kb) * 1024 for kb in options.sizes.split(",")]
    figures = [per_event_us(size, options.events) for size in sizes]
    print(
        f"\nFilter matching as the value grows (bench/filters.py): {options.events:,} events per size"
        f" against the worst filters ({OPTIONS} near-miss equalities, prefix, suffix, not, exists,"
        " a text range; an RE2 pattern and a name filter)\n"
    )
    print("| value | message µs | µs per KB | object µs | µs per KB |")
    print("|---|---:|---:|---:|---:|")
    per_kb = [
        (message * 1024 / size, stored * 1024 / size)
        for size, (message, stored) in zip(sizes, figures, strict=True)
    ]
    for size, (message, stored), (message_kb, stored_kb) in zip(sizes, figures, per_kb, strict=True):
        print(
            f"| {size // 1024} KB | {message:,.1f} | {message_kb:,.1f} | {stored:,.1f} | {stored_kb:,.1f} |"
        )
    growth = max(later / first for row in per_kb[1:] for later, first in zip(row, per_kb[0], strict=True))
    verdict = "pass" if growth <= BOUND else "**miss**"
    print(
        f"\nlargest µs per KB / µs per KB at {sizes[0] // 1024} KB = {growth:.2f} x "
        f"(target ≤ {BOUND} x: linear; a quadratic matcher's grows with the value): {verdict}"
    )


if __name__ == "__main__":
    main()
