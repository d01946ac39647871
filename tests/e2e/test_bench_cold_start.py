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
    assert (
        "| handle_event, test routes (a source compiled at load), Firestore ledger, Pub/Sub sinks |"
        in printed
    )
    assert (
        "| handle_event, example routes shipped (real pipeline, compiled package + sha256), same |" in printed
    )
    assert "target: shipped ≤ 1.3x the no-op's first answer" in printed
