"""The status page: a read-only, server-rendered view of the ledger for the person on call.

    /                 overview: runs by route and state, queue, open joins, quarantined events,
                      paused or not, the oldest open claim, the last hour's decisions (inline
                      SVG), the latest decisions
    /routes           each route's latest decisions, with their reasons; ?route=R&before=T&seen=N
                      pages back through one route's (older than T, or at T past the N shown)
    /story?id=ID      an event id, event key, run key or join key: its whole story
    /search?q=TEXT    a story, or the decisions about objects (or run keys) starting with TEXT

It reads the ledger through the same ports and read models as `kfp-trigger status` and
`explain` (functions/service/overview.py). No script runs on it: HTML and inline SVG only,
under a Content-Security-Policy that allows no script at all. Every value from the ledger is
hostile input (object names, reasons): Jinja2 escapes HTML, and `finalize` first passes every
value through `logs.clean`, so control, bidi-override and ANSI characters show as their
escapes, inert.
"""

from __future__ import annotations

import functools
import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from functions.logs import clean
from functions.service import overview, partitions
from functions.service.records import LEDGER_STATES, DecisionRecord, iso

if TYPE_CHECKING:
    import jinja2

    from functions.service.ledger import Ledger
    from functions.service.ports import Services

ROUTE_DECISIONS = 20  # the latest decisions shown for each route
MOST_SEEN = 10_000  # decisions of one instant a page link may pass over: bounds what a link asks
LATEST_DECISIONS = 15  # on the overview
PARTITION_COLOURS = {
    "succeeded": "#a5d6a7",
    "failed": "#ef9a9a",
    "running": "#90caf9",
    "queued": "#c5cae9",
    "waiting": "#fff59d",
    "stale": "#ffcc80",
    "skipped": "#e0e0e0",
    "missing": "#ffffff",
}
PARTITION_MARKS = {  # a partitions matrix's cells: the CLI's mark (a middle dot where missing), colour
    state: ("·" if state == "missing" else mark, PARTITION_COLOURS[state])
    for state, mark in partitions.MARKS.items()
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
OUTCOME_COLOURS = {
    "run": "#2e7d32",
    "completed": "#1565c0",
    "queued": "#6a1b9a",
    "duplicate": "#90a4ae",
    "skipped": "#f9a825",
    "ignored": "#cfd8dc",
    "busy": "#ff7043",
    "retry": "#ef6c00",
    "failed": "#c62828",
    "quarantined": "#ad1457",
}


@dataclass(frozen=True)
class Page:
    status: int
    html: str


def _shown(value: object) -> object:
    """Every value a template prints: markup the template built stays (tojson escapes what it
    holds), anything else is cleaned (escapes shown, cut) before Jinja2 escapes its HTML."""
    import markupsafe

    if value is None:
        return ""
    return value if isinstance(value, markupsafe.Markup) else clean(value)


@functools.cache
def _templates() -> jinja2.Environment:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        finalize=_shown,
        undefined=jinja2.StrictUndefined,
    )
    environment.globals.update(colours=OUTCOME_COLOURS, iso=iso, states=[s.value for s in LEDGER_STATES])
    return environment


def render(services: Services, path: str, query: Mapping[str, str]) -> Page:
    """The page at `path` (with its query), or 404."""
    ledger = cast("Ledger", services.store)  # bootstrap wires one ledger to every ledger port
    names = {rule.name: rule.join.names for rule in services.router.rules if rule.join}
    now = services.clock()
    match path.rstrip("/") or "/":
        case "/":
            report = overview.status(ledger, services.router.rules, services.settings.paused, now)
            chart = _chart(overview.activity(ledger, now))
            latest = ledger.recent(0.0, limit=LATEST_DECISIONS)
            return _page("overview.html", report=report, now=now, chart=chart, decisions=latest)
        case "/routes":
            rules = services.router.by_name
            # "": decisions no route made (quarantined, ignored events), with their reasons
            shown = [query["route"]] if query.get("route") in {*rules, ""} else [*rules, ""]
            start = Older.read(query)
            pages = {name: _route_page(ledger, name, start) for name in shown}
            return _page("routes.html", pages=pages, rules=rules)
        case "/partitions":
            rule = services.router.by_name.get(query.get("route", ""))
            if rule is None or rule.partition is None:
                return _page("search.html", 404, text=query.get("route", ""), found=[])
            matrix = partitions.partitions(ledger, rule, now, _days(query))
            return _page("partitions.html", found=matrix, marks=PARTITION_MARKS)
        case "/story":
            identifier = query.get("id", "")
            told = overview.story(ledger, identifier, names) if identifier else None
            if told is None:
                return _page("search.html", 404, text=identifier, found=[])
            return _story(ledger, told)
        case "/search":
            text = query.get("q", "")
            found = overview.search(ledger, text, names)
            if isinstance(found, overview.Story):
                return _story(ledger, found)
            return _page("search.html", text=text, found=found)
    return _page("search.html", 404, text="", found=[])


def _days(query: Mapping[str, str]) -> int:
    """The span a partitions page shows: ?days=N, 1 to 366 (30 otherwise)."""
    days = query.get("days", "")
    return min(max(int(days), 1), 366) if days.isascii() and days.isdigit() else 30


@dataclass(frozen=True)
class Older:
    """Where a route's next page starts: at time `at`, past the first `seen` decisions recorded at
    that very time (the last page showed them), so that decisions of one instant are neither
    skipped nor shown twice where a page ends among them. `seen` None: strictly before `at`."""

    at: float
    seen: int | None = None

    @staticmethod
    def read(query: Mapping[str, str]) -> Older | None:
        """From a link's `before` and `seen`; None (the first page) for garbage."""
        try:
            at = float(query["before"])
            seen = min(max(int(query["seen"]), 0), MOST_SEEN) if "seen" in query else None
        except (KeyError, ValueError):
            return None
        return Older(at, seen)


def _route_page(ledger: Ledger, route: str, start: Older | None) -> tuple[list[DecisionRecord], Older | None]:
    """A page of one route's decisions, newest first, from `start`; and where the next begins if
    this one is full."""
    if start is None:
        found = ledger.recent(0.0, route=route, limit=ROUTE_DECISIONS)
    elif start.seen is None:
        found = ledger.recent(0.0, before=start.at, route=route, limit=ROUTE_DECISIONS)
    else:  # from `at` itself (ledgers take `before` strictly), past those of `at` already shown
        found = ledger.recent(
            0.0, before=math.nextafter(start.at, math.inf), route=route, limit=ROUTE_DECISIONS + start.seen
        )
        passed = 0
        while passed < min(start.seen, len(found)) and found[passed].at == start.at:
            passed += 1
        found = found[passed:][:ROUTE_DECISIONS]
    if len(found) < ROUTE_DECISIONS:
        return found, None
    last = found[-1].at
    seen = sum(decision.at == last for decision in found)
    if start is not None and start.at == last and start.seen is not None:
        seen += start.seen
    return found, Older(last, seen)


def _story(ledger: Ledger, told: overview.Story) -> Page:
    from functions.service.results import result_event

    runs = [
        {
            "record": run,
            "superseded_by": overview.superseded_by(ledger, run),
            "result": result_event(run) if run.state.terminal and run.published_at else None,
        }
        for run in told.runs
    ]
    return _page(
        "story.html", story=told, runs=runs, explain=f"kfp-trigger explain {shlex.quote(told.identifier)}"
    )


def _page(template: str, code: int = 200, **values: Any) -> Page:
    return Page(code, _templates().get_template(template).render(**values))


@dataclass(frozen=True)
class Bar:
    x: int
    segments: list[tuple[str, int, int]]  # outcome, y, height
    title: str


def _chart(activity: overview.Activity, height: int = 80, width: int = 8) -> dict[str, object]:
    """Stacked bars, one per minute: pixel geometry for the template's SVG."""
    peak = max((sum(minute.values()) for minute in activity.minutes), default=0) or 1
    bars = []
    for number, minute in enumerate(activity.minutes):
        y, segments = height, []
        for outcome in OUTCOME_COLOURS:
            if count := minute.get(outcome, 0):
                size = max(1, round(count * height / peak))
                y -= size
                segments.append((outcome, y, size))
        total = ", ".join(f"{count} {outcome}" for outcome, count in sorted(minute.items()))
        title = f"{iso(activity.start + 60 * number)}: {total or 'nothing'}"
        bars.append(Bar(number * (width + 2), segments, title))
    seen = sorted({outcome for minute in activity.minutes for outcome in minute})
    decided = sum(sum(minute.values()) for minute in activity.minutes)
    return {
        "bars": bars,
        "width": len(activity.minutes) * (width + 2),
        "height": height,
        "bar": width,
        "peak": peak,
        "seen": seen,
        "total": decided,
        "cut": activity.cut,
    }
