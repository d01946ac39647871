"""Retention (issue 14 item 10): nothing grows forever.

- SQLite: `prune` deletes old decisions, published ended runs, their batch memberships, rate and
  daily places and marks not raised since, and keeps everything still needed; the CLI refuses a
  horizon shorter than the platform's 24 h of redeliveries.
- Firestore: every document a TTL policy should delete carries `expire_at` (now + retention); the
  deploy plan creates the policies (tests/unit/test_plan.py).
- JSONL sinks rotate before a file passes its size, and lose no line when processes race.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from functions.adapters.jsonl_sink import JsonlSink
from functions.adapters.sqlite.ledger import SqliteLedger
from functions.bootstrap import ledger_from
from functions.service.records import DecisionRecord, NewRun, Outcome
from pipelines.backend import RunState
from tests.conftest import PROJECT
from tests.support import env_for, kfp_trigger

DAY = 86400.0
NOW = 1_800_000_000.0


def _run(ledger: SqliteLedger, key: str, at: float, *, ended: bool, published: bool) -> None:
    run = NewRun(key, "route", "p", "v", "local", {}, f"e-{key}")
    ledger.mark_submitted(key, ledger.claim(run, at, 60).attempt, f"r-{key}", at)
    if ended:
        ledger.finish(key, RunState.SUCCEEDED, {}, at)
    if published:
        ledger.mark_published(key, at)


def test_prune_deletes_what_is_old_and_no_longer_needed(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    old, recent = NOW - 40 * DAY, NOW - DAY
    for at, name in ((old, "old"), (recent, "recent")):
        ledger.record(DecisionRecord(at, f"e-{name}", "", "t", Outcome.IGNORED, reason="deleted object"))
        _run(ledger, f"{name}-done", at, ended=True, published=True)
        ledger.raise_mark(f"b/{name}.csv", 3, at)
        ledger.hold(f"rate:route:{int(at // 3600)}", 5, f"{name}-done", at)
        ledger.join_batch(
            NewRun(f"{name}-batch", "route", "p", "v", "local", {}, "e"), at, "gs://b/x", name, at
        )
    _run(ledger, "old-running", old, ended=False, published=False)
    _run(ledger, "old-unpublished", old, ended=True, published=False)
    ledger.hold("active:route", 2, "old-running", old)

    pruned = ledger.prune(NOW - 30 * DAY)

    assert pruned == {
        "decisions": 1,
        "runs": 1,
        "batch_members": 0,
        "places": 1,
        "marks": 1,
        "joins": 0,
        "events": 0,
    }
    assert ledger.trail("e-old") == []
    assert [d.event_id for d in ledger.trail("e-recent")] == ["e-recent"]
    assert ledger.get("old-done") is None
    for kept in ("recent-done", "old-running", "old-unpublished", "old-batch"):
        assert ledger.get(kept) is not None, f"{kept} is still needed"
    assert ledger.holders("active:route") == ["old-running"], "a running run keeps its place"
    assert (ledger.mark("b/old.csv"), ledger.mark("b/recent.csv")) == (0, 3)
    assert ledger.members("old-batch") == ["gs://b/x"], "a queued batch keeps its members"


def test_the_prune_command_refuses_less_than_a_day_and_reports_counts(tmp_path: Path) -> None:
    import subprocess

    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    ledger.record(DecisionRecord(time.time() - 3 * DAY, "e-1", "", "t", Outcome.IGNORED))
    env = env_for(tmp_path)
    short = subprocess.run(
        kfp_trigger("prune", "--older-than", "12h"), env=env, capture_output=True, text=True
    )
    assert short.returncode == 2
    assert "at least 1d: a redelivery within the platform's 24 h" in short.stderr
    done = subprocess.run(
        kfp_trigger("prune", "--older-than", "2d", "--json"),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["pruned"]["decisions"] == 1


@pytest.mark.emulator
def test_firestore_documents_carry_their_expiry_for_the_ttl_policies(firestore_emulator: str) -> None:
    from functions.adapters.firestore.database import EXPIRE_AT
    from functions.adapters.firestore.ledger import FirestoreLedger

    ledger = ledger_from(f"firestore://{PROJECT}/runs-{uuid.uuid4().hex[:12]}", retention_days=2)
    assert isinstance(ledger, FirestoreLedger)
    now = time.time()
    ledger.record(DecisionRecord(now, "e-1", "", "t", Outcome.IGNORED))
    ledger.raise_mark("b/o", 1, now)
    ledger.hold("rate:route:1", 5, "k", now)
    ledger.hold("active:route", 5, "k", now)
    run = NewRun("k", "route", "p", "v", "local", {}, "e-1")
    ledger.mark_submitted("k", ledger.claim(run, now, 60).attempt, "r", now)
    ledger.finish("k", RunState.SUCCEEDED, {}, now)
    ledger.join_batch(NewRun("b", "route", "p", "v", "local", {}, "e"), now, "gs://b/o", "b/o#1", now)
    collections = {
        "decisions": ledger._db.decisions,
        "marks": ledger._db.marks,
        "members": ledger._db.members,
        "runs": ledger._db.runs,
    }
    expected = datetime.now(UTC).timestamp() + 2 * DAY
    for name, collection in collections.items():
        expiries = [(s.to_dict() or {}).get(EXPIRE_AT) for s in collection.stream()]
        ended = [e for e in expiries if e is not None]
        assert ended, f"{name}: no document carries {EXPIRE_AT}"
        assert all(abs(e.timestamp() - expected) < 60 for e in ended), name
    places = {
        (s.to_dict() or {})["scope"]: (s.to_dict() or {}).get(EXPIRE_AT) for s in ledger._db.places.stream()
    }
    assert places["rate:route:1"] is not None
    assert places["active:route"] is None, "an active place is given back when its run ends, never expired"
    (queued,) = [s.to_dict() for s in ledger._db.runs.stream() if (s.to_dict() or {})["run_key"] == "b"]
    assert EXPIRE_AT not in (queued or {}), "a run that has not ended does not expire"


def _append(path: str, writer: int, lines: int) -> None:
    sink = JsonlSink(Path(path), max_bytes=4096, keep=1000)
    for number in range(lines):
        sink.publish({"writer": writer, "n": number, "pad": "x" * 100})


@pytest.mark.slow  # processes racing: the full suite runs it, make check does not
def test_jsonl_sinks_rotate_by_size_and_lose_nothing_when_processes_race(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append, args=(str(path), w, 200)) for w in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    files = sorted(tmp_path.glob("results.jsonl*"))
    assert len(files) > 10, "it rotated"
    assert all(f.stat().st_size <= 4096 for f in files)
    seen = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted((d["writer"], d["n"]) for d in seen) == [(w, n) for w in range(4) for n in range(200)]


def test_jsonl_sinks_keep_only_the_newest_rotated_files(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "quarantine.jsonl", max_bytes=1000, keep=2)
    for number in range(100):
        sink.publish({"n": number, "pad": "y" * 80})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "quarantine.jsonl",
        "quarantine.jsonl.1",
        "quarantine.jsonl.2",
    ]
    newest = [json.loads(line)["n"] for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert newest[-1] == 99


@pytest.mark.slow  # four simulated days through handle_event (a few seconds)
def test_a_ledger_pruned_daily_stays_the_same_size_day_after_day() -> None:
    """bench/retention.py at a small size: what it prints for 30 days of 10,000 events."""
    from bench.retention import simulate

    second, fourth = simulate(days=4, per_day=500, keep=DAY, report=[2, 4])
    assert {k: v for k, v in second.items() if k not in ("day", "bytes")} == {
        k: v for k, v in fourth.items() if k not in ("day", "bytes")
    }
    assert second["runs"] == 350, "one day of runs is kept"
    assert fourth["bytes"] <= 1.1 * second["bytes"]


def test_a_ledger_from_before_per_route_membership_keeps_its_batches(tmp_path: Path) -> None:
    """A batch queued by an older version (objects in the `members` table) still starts with them."""
    import sqlite3

    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger(path)
    ledger.join_batch(
        NewRun("w/d1@t", "windows", "p", "v", "local", {}, "e"), NOW, "gs://b/new", "b/new#1", NOW
    )
    with sqlite3.connect(path) as db:  # what the older version left
        db.execute("CREATE TABLE members (run_key TEXT NOT NULL, member TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO members VALUES (?, ?)", [("w/d1@t", "gs://b/old-1"), ("w/d1@t", "gs://b/old-2")]
        )
    again = SqliteLedger(path)
    assert again.members("w/d1@t") == ["gs://b/new", "gs://b/old-1", "gs://b/old-2"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'members'").fetchone() is None
    assert SqliteLedger(path).members("w/d1@t") == ["gs://b/new", "gs://b/old-1", "gs://b/old-2"]
