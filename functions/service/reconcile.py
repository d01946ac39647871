"""The reconcile pass, which Cloud Scheduler calls every few minutes (the `reconcile` target,
`kfp-trigger reconcile`): first the deliveries that ran out of attempts (`dead_letters`), then
the schedule slots missed within a route's `schedule.catch_up`
(`backfill.catch_up`), then every run's backstop (`completion.reconcile`: claims past their
lease, runs whose notice was lost, unpublished results, expired join windows, the queue), then
what should have happened and did not (`watch.check`: data a route expects, quarantine bursts);
last, when telemetry records, the queue depth and the open join windows."""

from __future__ import annotations

from functions.service import backfill, completion, dead_letters, watch
from functions.service.passes import Pass
from functions.service.ports import Services
from functions.service.records import Handled
from functions.service.windows import JoinStatus
from pipelines.backend import RunState

MAX_LISTED = 100  # skipped runs listed in the reconcile target's answer
MAX_COUNTED = 10_000  # queued runs counted for the queue-depth gauge


def reconcile(services: Services) -> Pass:
    """One pass: what it finished, published or started, and what it skipped, why."""
    report = dead_letters.redeliver(services)
    report.add(backfill.catch_up(services))
    report.add(completion.reconcile(services))
    report.add(watch.check(services))
    if services.telemetry.recording:
        queued = services.store.runs(state=RunState.QUEUED, limit=MAX_COUNTED)
        services.telemetry.gauges(len(queued), len(services.queue.joins(status=JoinStatus.OPEN)))
    return report


def reconcile_pass(services: Services) -> Handled:
    """The `reconcile` target's use case."""
    report = reconcile(services)
    body = {
        "finished": report.done,
        "skipped": report.skipped[:MAX_LISTED],  # each is also logged; the answer stays small
        "skipped_total": len(report.skipped),
        "left": report.left[:MAX_LISTED],
        "left_total": len(report.left),
    }
    return Handled((), body)
