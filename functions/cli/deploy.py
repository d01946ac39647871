"""`kfp-trigger deploy module|plan|source`: the Terraform module, its inputs and the functions'
source archive, written into deploy/terraform/ of the folder it runs in (a team's repository),
from routes.yaml and the backend settings (`tfvars`, `archive`)."""

from __future__ import annotations

import json
import tempfile
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
    From your project's folder, with KFP_TRIGGER_KFP_HOST (etc.) set as the functions need them:
      kfp-trigger deploy module          # once, and after each upgrade of kfp-trigger
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

    if out == str(TERRAFORM / "routes.auto.tfvars.json") and not (TERRAFORM / "main.tf").exists():
        raise click.ClickException(
            f"no Terraform module in {TERRAFORM}: `kfp-trigger deploy module` writes it there (or give --out)"
        )
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
    """Write the functions' source archive for ROUTES: kfp-trigger's packages as installed (events,
    functions without its CLI, pipelines), main.py, the hashed requirements.txt, and ROUTES as
    routes.yaml with every pipeline compiled into packages/ and pinned by its sha256 — so a cold
    start never imports the kfp DSL or your Python. Nothing else: no tests, no local state, no
    Terraform, none of your other files.

    Exits 1, naming the route or pipeline, if the functions could not load what ROUTES names:
    a routes problem (as `routes check`), a pipeline that does not compile, or a route on
    `backend: local`. Its bytes depend on the files' contents only, so the functions are rebuilt
    only when code, routes or pipelines change. KFP_TRIGGER_NOTIFY_IMAGE, if the functions have
    it, must be set here too (a `notify: true` pipeline ships wrapped).
    """
    from functions.cli.archive import digest, source_archive, source_files
    from functions.cli.tfvars import DeployError, route_backends
    from pipelines import catalog

    routes = Path(routes_path)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = catalog.load(routes, Path(scratch), common.settings(routes_path).notify_image)
            route_backends(loaded.config)
        except (RoutesError, DeployError) as exc:
            raise click.ClickException(str(exc)) from exc
        if listing:
            for name, data in source_files(routes, loaded):
                click.echo(f"{len(data):>9}  {name}")
            return
        data = source_archive(routes, loaded)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(data)
    click.echo(f"wrote {out}: {len(data):,} bytes, md5 {digest(data)}", err=True)


@deploy.command("module")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=str(TERRAFORM),
    show_default=True,
    help="the folder to write the Terraform module into",
)
def deploy_module(out: str) -> None:
    """Write the Terraform module (the functions, the push subscriptions that deliver to them,
    topics, ledger, IAM, alerts) into OUT, beside which `deploy plan` and `deploy source` write
    their files. Run it again after upgrading kfp-trigger: it replaces the module's own files
    and leaves the rest."""
    from functions.cli.installed import terraform_module

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    module = sorted(terraform_module().glob("*.tf"))
    for path in module:
        (folder / path.name).write_bytes(path.read_bytes())
    click.echo(f"wrote {len(module)} files of the Terraform module into {folder}", err=True)
