"""The backend contract (tests/support/engine_contract.py) on the user's own engines: what
`make test` checks on the fakes, checked where the runs really happen."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipelines.backend import Backend, CompiledPipeline
from tests.support import engine_contract


@pytest.mark.parametrize("check", engine_contract.CHECKS, ids=lambda check: check.__name__)
def test_the_engine_keeps_the_contract(
    engine: tuple[str, Backend], echo: CompiledPipeline, check: Callable[[Backend, CompiledPipeline], None]
) -> None:
    check(engine[1], echo)


def test_a_cancelled_run_ends_and_is_recorded_cancelled(
    engine: tuple[str, Backend], echo: CompiledPipeline
) -> None:
    """A run cancelled on its engine ends, as the engine words it (KFP stores a terminated run's
    workflow as FAILED; Vertex says CANCELLED), and kfp-trigger records that end CANCELED
    (`supersede.as_cancelled`). Waits up to KFP_TRIGGER_LIVE_WAIT_SECONDS (default 900)."""
    import os
    import time
    import uuid

    from pipelines.backend import RunState, Submission

    backend = engine[1]
    key = f"contract/{uuid.uuid4().hex[:8]}/terminated.csv#1"
    run_id = backend.submit(Submission(key, "contract-check", echo, {"message": "contract"}))
    backend.cancel(run_id)
    deadline = time.monotonic() + float(os.environ.get("KFP_TRIGGER_LIVE_WAIT_SECONDS", "900"))
    while not (status := backend.status(run_id)).state.terminal and time.monotonic() < deadline:
        time.sleep(10)
    assert status.state in (RunState.FAILED, RunState.CANCELED), f"ended {status.state}: {status.error}"


def test_an_inverse_proxy_host_keeps_working_past_its_token(echo: CompiledPipeline) -> None:
    """On AI Platform Pipelines (*.pipelines.googleusercontent.com): a token that expired is
    refreshed before the next request, and one the proxy refuses is renewed and the request
    sent again (the paths the KFP fake's `tokens` stands in for)."""
    import datetime
    import uuid

    import google.auth

    from pipelines.backend import Submission
    from pipelines.kfp.backend import KfpBackend
    from tests.live.conftest import TARGETS

    values = TARGETS.get("kfp", {})
    host = values.get("kfp_host", "")
    if not host.rstrip("/").endswith(".pipelines.googleusercontent.com"):
        pytest.skip("KFP_TRIGGER_LIVE_KFP_HOST is not an AI Platform Pipelines host")
    adc, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    backend = KfpBackend.for_host(host, values.get("kfp_namespace", "kubeflow"), google_credentials=adc)
    prefix = f"contract/{uuid.uuid4().hex[:8]}"
    backend.submit(Submission(f"{prefix}/first.csv#1", "contract-check", echo, {"message": "contract"}))
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # google-auth keeps naive UTC
    adc.expiry = now - datetime.timedelta(seconds=1)  # as an hour later
    backend.submit(Submission(f"{prefix}/expired.csv#1", "contract-check", echo, {"message": "contract"}))
    adc.token = "refused"  # google-auth counts it valid; the proxy does not
    backend.submit(Submission(f"{prefix}/refused.csv#1", "contract-check", echo, {"message": "contract"}))
