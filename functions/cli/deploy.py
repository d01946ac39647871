"""`kfp-trigger deploy plan`: every Google Cloud resource routes.yaml needs (functions/cli/plan/)."""

from __future__ import annotations

from pathlib import Path

import click

from events.errors import RoutesError


@click.group()
def deploy() -> None:
    """Deploy to Google Cloud what routes.yaml needs."""


@deploy.command("plan")
@click.option(
    "--routes", "routes_path", default="routes.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--project", required=True, help="the Google Cloud project to deploy into")
@click.option("--region", required=True, help="where the functions, triggers and jobs run, e.g. europe-west1")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["terraform", "gcloud"]),
    default="terraform",
    show_default=True,
    help="terraform: one main.tf (google provider); gcloud: an idempotent bash script",
)
@click.option("--out", type=click.Path(dir_okay=False), help="write to this file instead of stdout")
def deploy_plan(routes_path: str, project: str, region: str, output_format: str, out: str | None) -> None:
    """Render every resource the routes need: topics and subscriptions (with dead letters),
    the three functions, Eventarc triggers, Scheduler jobs, Firestore, service accounts with
    least-privilege roles, Workload Identity Federation for the AWS product, and alerts.

    \b
    Terraform (apply from the checkout that holds routes.yaml and main.py):
      kfp-trigger deploy plan --project acme-analytics --region europe-west1 --out deploy/terraform/main.tf
      terraform -chdir=deploy/terraform init && terraform -chdir=deploy/terraform apply -var source_dir=../..
    \b
    gcloud (run from the checkout; safe to run again):
      kfp-trigger deploy plan --project acme-analytics --region europe-west1 --format gcloud > deploy.sh
      bash deploy.sh
    """
    from events.routes import load_routes
    from functions.cli.plan.deployment import build_plan
    from functions.cli.plan.model import PlanError
    from functions.cli.plan.render import render_gcloud, render_terraform

    try:
        config = load_routes(Path(routes_path).read_text(encoding="utf-8"))
        plan = build_plan(config, project, region)
    except OSError as exc:
        raise click.ClickException(f"{routes_path}: cannot read ({exc.strerror})") from exc
    except (RoutesError, PlanError) as exc:
        raise click.ClickException(str(exc)) from exc
    text = render_terraform(plan) if output_format == "terraform" else render_gcloud(plan)
    if out is None:
        click.echo(text, nl=False)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}: {len(plan.resources)} resources", err=True)
