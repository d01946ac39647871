"""bench/scaling.py at a small size, so the benchmark cannot rot: pools of handle_event and
no-op instances behind the relay, and a burst whose writes are counted per document. Nothing
here is timed; the figures are `make bench`'s."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bench import scaling, wired
from tests.support import env_for, serving
from tests.support.kfp_fake import FakeKfp

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def test_the_scaling_bench_runs_and_counts_writes_per_document(
    firestore_emulator: str, pubsub_emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scaling, "EVENTS", 10)
    monkeypatch.setattr(scaling, "WARM", 2)
    monkeypatch.setattr(scaling, "BURST", 30)
    monkeypatch.setattr(scaling, "INSTANCES", (1, 2))
    (tmp_path / "routes.yaml").write_text(scaling.ROUTES)
    (tmp_path / "logs").mkdir()
    name = f"scaling-{uuid.uuid4().hex[:8]}"
    with serving(FakeKfp()) as kfp_url:
        env = env_for(tmp_path, routes=tmp_path / "routes.yaml", **wired(name), KFP_TRIGGER_KFP_HOST=kfp_url)
        figures = scaling.scaling(env, tmp_path / "logs")
        rows = scaling.hot_documents(
            env | {"KFP_TRIGGER_LEDGER": f"{env['KFP_TRIGGER_LEDGER']}-burst"}, tmp_path
        )
    assert set(figures) == {(target, count) for target in ("noop", "handle_event") for count in (1, 2)}
    assert all(value > 0 for value in figures.values())
    documents, most, _, _ = rows[f"{name}-burst"]  # each run: claimed, then marked submitted
    assert (documents, most) == (30, 2)
    assert rows[f"{name}-burst-marks"][:2] == (31, 1), (
        "30 generation marks and the route's seen mark, once each"
    )
