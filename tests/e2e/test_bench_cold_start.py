"""bench/cold_start.py once per target, so the benchmark cannot rot: a fresh `handle_event`
process on the Firestore and Pub/Sub emulators answers its first event 2xx (the bench raises
otherwise), as does the no-op. Nothing here is timed; the figures are `make bench`'s."""

from __future__ import annotations

import pytest

from bench import cold_start

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def test_the_cold_start_bench_answers_a_first_event_per_target(capsys: pytest.CaptureFixture[str]) -> None:
    cold_start.main(["--repeat", "1"])
    printed = capsys.readouterr().out
    assert "| no-op CloudEvent function |" in printed
    assert "| handle_event, Firestore ledger, Pub/Sub sinks (emulators) |" in printed
    assert "target: first answer" in printed
