"""`kfp-trigger`: check routes, simulate events, run the embedded stack, inspect and operate runs.

Laptop and operator tooling: none of `functions/cli/` ships in the function's source
(`kfp-trigger deploy source` leaves it out). Each command group lives in its own module; this
one assembles them.
"""

from __future__ import annotations

import click

from functions.cli import (
    deploy,
    doctor,
    init,
    inspect,
    local,
    operate,
    partitions,
    pipelines,
    plan,
    resend,
    routes,
    send,
    terminal,
)

EXAMPLES = """
\b
Quick start:
  kfp-trigger demo                          land survey data, watch one run end to end
  kfp-trigger init my-team                  your own project: routes.yaml, a pipeline, route tests
  kfp-trigger routes check routes.yaml      validate a routes file (exit 1 on errors)
  kfp-trigger routes test route-tests       your cases: which event starts what (for CI)
  kfp-trigger routes plan OLD.yaml routes.yaml   what the change does to last week's events
  kfp-trigger doctor                        before the first event: can the engines run it all
  kfp-trigger simulate event.json --json    which routes would fire, touching nothing
  kfp-trigger dev                           serve both targets, watch ./landing, tick schedules
  kfp-trigger send message product-events --data '{"event_id": "e-1"}'   one event to dev
  kfp-trigger runs --state FAILED --json    runs recorded in the ledger
  kfp-trigger status                        runs by route and state, queue, quarantine, claims
  kfp-trigger explain EVENT_ID|RUN_KEY      every decision for one event or run
  kfp-trigger reconcile                     finish runs whose completion notice was lost
  kfp-trigger rerun RUN_KEY                 run it again on purpose (a new run key)
  kfp-trigger cancel RUN_KEY                stop a queued or running run
  kfp-trigger pause / resume                hold every submission in the queue / start them
  kfp-trigger prune --older-than 30d        delete old decisions and finished runs (SQLite)
  kfp-trigger backfill --route R --since 7d --dry-run   what a missed week would start
  kfp-trigger replay --quarantine --since 1d   after a routes.yaml fix: the day's quarantine again
  kfp-trigger deploy plan --project P --region R   the Terraform module's inputs (deploy/terraform)
"""


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Start Kubeflow Pipelines runs from Google Cloud events, exactly once per event.

    Events (a Cloud Storage object landed, a Pub/Sub message from the product, a BigQuery job
    wrote a table, a Cloud Scheduler tick) are matched against routes.yaml; each match starts
    one pipeline run, and each run's end is published as a result CloudEvent.
    """
    terminal.guard_output()  # event text is printed as text, never as terminal control


for command in (
    init.init,
    routes.routes,
    doctor.doctor,
    routes.simulate,
    local.dev,
    local.demo,
    send.send,
    inspect.status,
    inspect.runs,
    inspect.explain,
    partitions.partitions,
    inspect.results,
    inspect.alerts,
    operate.reconcile,
    operate.rerun,
    operate.cancel,
    operate.pause,
    operate.resume,
    operate.prune,
    resend.backfill,
    resend.replay,
    deploy.deploy,
    pipelines.pipelines,
):
    main.add_command(command)
routes.routes.add_command(plan.plan)
