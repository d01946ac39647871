"""`kfp-trigger deploy plan|source`: the inputs of the Terraform module in deploy/terraform/ and
the functions' source archive, from routes.yaml and the backend settings (functions/cli/tfvars.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from events.errors import RoutesError
from functions.cli import common

TERRAFORM = Path("deploy/terraform")
SOURCE = "build/source.zip"  # relative to the Terraform root


@click.group()
def deploy() -> None:
    """Deploy to Google Cloud what routes.yaml needs, with the Terraform module in deploy/terraform.

    \b
    From the checkout, with KFP_TRIGGER_KFP_HOST (etc.) set as the functions need them:
      kfp-trigger deploy plan --project acme-analytics --region europe-west1
      kfp-trigger deploy source
      terraform -chdir=deploy/terraform init
      terraform -chdir=deploy/terraform apply -var aws_account_id=… -var aws_role_arn=…
    """


ROUTES_OPTION = click.option(
    "--routes",
    "routes_path",
    default="routes.yaml",
    show_default=True,
    envvar="KFP_TRIGGER_ROUTES",
    type=click.Path(dir_okay=False, exists=True),
)


@deploy.command("plan")
@ROUTES_OPTION
@click.option("--project", required=True, help="the Google Cloud project to deploy into")
@click.option("--region", required=True, help="where the functions and jobs run, e.g. europe-west1")
@click.option(
    "--prefix",
    default="kfp-trigger",
    show_default=True,
    help="the first part of every resource's name (topics, functions, the ledger's collections); "
    "written into the inputs as the module's `prefix`, so set it here, not with -var",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=str(TERRAFORM / "routes.auto.tfvars.json"),
    show_default=True,
    help="where to write the module's inputs ('-': stdout)",
)
def deploy_plan(routes_path: str, project: str, region: str, prefix: str, out: str) -> None:
    """Write the Terraform module's inputs for ROUTES: buckets, datasets, product topics,
    schedules, chained routes, the product message schema, and the backends' settings for the
    functions' environment (read from KFP_TRIGGER_KFP_HOST, _KFP_NAMESPACE, _KFP_CLIENT_ID,
    _VERTEX_LOCATION, … as the functions will need them).

    A route on PREFIX-results is a chained route (it starts on another route's result).

    Exits 1 naming the routes when a route cannot be deployed: `backend: local` (kfp.local does
    not run inside a Cloud Function), a backend setting missing, a dataset not named literally,
    a topic the module creates for itself (PREFIX-quarantine, …) listened to.
    Review the file like code: it is what `terraform plan` will act on.
    """
    from events.routes import load_routes
    from functions.cli.tfvars import DeployError, tfvars

    try:
        config = load_routes(Path(routes_path).read_text(encoding="utf-8"))
        inputs = tfvars(config, common.settings(routes_path), project, region, prefix)
    except OSError as exc:
        raise click.ClickException(f"{routes_path}: cannot read ({exc.strerror})") from exc
    except (RoutesError, DeployError) as exc:
        raise click.ClickException(str(exc)) from exc
    text = json.dumps(inputs | {"function_source": SOURCE}, indent=2, sort_keys=True) + "\n"
    if out == "-":
        click.echo(text, nl=False)
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


@deploy.command("source")
@ROUTES_OPTION
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=str(TERRAFORM / SOURCE),
    show_default=True,
    help="the archive to write",
)
@click.option("--list", "listing", is_flag=True, help="print the archive's entries instead of writing it")
def deploy_source(routes_path: str, out: str, listing: bool) -> None:
    """Write the functions' source archive: the packages the functions import (events,
    functions without its CLI, pipelines), main.py, ROUTES as routes.yaml, and requirements.txt
    (hashed: the buildpack installs exactly what was tested). Nothing else: no tests, no local
    state, no Terraform. Its bytes depend on the files' contents only, so its MD5 (in the
    uploaded object's name) changes, and the functions are rebuilt, only when code, routes or
    requirements do.
    """
    from events.routes import load_routes
    from functions.cli.tfvars import digest, source_archive, source_files

    root = Path.cwd()
    routes = Path(routes_path)
    if not (root / "main.py").exists():
        raise click.ClickException("run it from the kfp-trigger checkout (no main.py here)")
    try:
        load_routes(routes.read_text(encoding="utf-8"))  # never ship routes the functions would refuse
    except RoutesError as exc:
        raise click.ClickException(str(exc)) from exc
    if listing:
        for name, data in source_files(root, routes):
            click.echo(f"{len(data):>9}  {name}")
        return
    data = source_archive(root, routes)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(data)
    click.echo(f"wrote {out}: {len(data):,} bytes, md5 {digest(data)}", err=True)
