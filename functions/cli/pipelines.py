"""`kfp-trigger pipelines …`: compile the catalog, push `backend: kfp` versions to the cluster."""

from __future__ import annotations

from pathlib import Path

import click

from events.errors import KfpTriggerError, RoutesError
from functions.cli import common
from functions.cli.common import settings_options
from functions.settings import SettingsError


@click.group()
def pipelines() -> None:
    """Work with the pipeline catalog."""


@pipelines.command("compile")
@settings_options
@click.option(
    "--out", type=click.Path(file_okay=False), help="folder for the packages  [default: STATE/packages]"
)
def pipelines_compile(
    routes: str | None, state_dir: str | None, landing_dir: str | None, out: str | None
) -> None:
    """Compile every pipeline in the routes file to <name>-<hash12>.yaml."""
    from pipelines import catalog as routes_catalog

    settings = common.settings(routes, state_dir, landing_dir)
    target = Path(out) if out else settings.packages_dir
    try:
        loaded = routes_catalog.load(settings.routes, target, settings.notify_image)
    except RoutesError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, pipeline in loaded.catalog.items():
        click.echo(f"{name}: {pipeline.package}  (sha256 {pipeline.version})")


@pipelines.command("push")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print [{pipeline, version, pipeline_id, version_id}]")
def pipelines_push(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Upload the current version of every `backend: kfp` pipeline to the cluster.

    Each version is named <pipeline>-<sha12> and uploaded once: a version already on the
    cluster is found, not duplicated. The cluster is KFP_TRIGGER_KFP_HOST (and _NAMESPACE,
    _CLIENT_ID or _TOKEN).
    """
    from functions.bootstrap import kfp_backend
    from pipelines import catalog as routes_catalog

    settings = common.settings(routes, state_dir, landing_dir)
    try:
        loaded = routes_catalog.load(settings.routes, settings.packages_dir, settings.notify_image)
    except RoutesError as exc:
        raise click.ClickException(str(exc)) from exc
    on_cluster = [pipeline for pipeline in loaded.catalog.values() if pipeline.backend == "kfp"]
    if not on_cluster:
        if as_json:
            common.emit([])
        else:
            click.echo("no pipeline has backend: kfp; nothing to push")
        return
    try:
        backend = kfp_backend(settings)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    pushed = []
    for pipeline in on_cluster:
        try:
            pipeline_id, version_id = backend.version(pipeline)
        except KfpTriggerError as exc:
            raise click.ClickException(f"{pipeline.name}: {exc}") from exc
        pushed.append(
            {
                "pipeline": pipeline.name,
                "version": pipeline.version_name,
                "pipeline_id": pipeline_id,
                "version_id": version_id,
            }
        )
    if as_json:
        common.emit(pushed)
        return
    for row in pushed:
        click.echo(f"{row['version']}: pipeline {row['pipeline_id']}, version {row['version_id']}")
