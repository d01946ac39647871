"""`kfp-trigger init DIR`: a team's own project, ready for `routes check` and `routes test`.

The files come from template/ beside this module (a `.tmpl` suffix is dropped; `gitignore`
becomes `.gitignore`): routes.yaml with one route and its pipeline, the pipeline itself
(pipelines/csat.py), route tests with their events, a CI workflow that runs both checks, and the
schema editors read routes.yaml with.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

TEMPLATE = Path(__file__).resolve().parent / "template"
RENAMED = {"gitignore": ".gitignore"}

NEXT_STEPS = """\
next:
  cd {folder}
  kfp-trigger routes check          # compiles pipelines/csat.py, checks every route against it
  kfp-trigger routes test           # the cases in route-tests/
  kfp-trigger dev                   # serve it on this machine; then drop a file in:
  mkdir -p landing/my-team-landing/csat/2026-12-01
  cp some.csv landing/my-team-landing/csat/2026-12-01/responses.csv
To deploy: docs/deploy.md (kfp-trigger deploy module | plan | source, then terraform apply)."""


def scaffold() -> dict[str, bytes]:
    """The project's files: relative path → contents."""
    from events.schema import json_schema

    files: dict[str, bytes] = {}
    for path in sorted(p for p in TEMPLATE.rglob("*") if p.is_file()):
        relative = path.relative_to(TEMPLATE).as_posix().removesuffix(".tmpl")
        files[RENAMED.get(relative, relative)] = path.read_bytes()
    files["routes.schema.json"] = (json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n").encode()
    return files


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print {folder, files: [path]}")
def init(folder: Path, as_json: bool) -> None:
    """Start your team's project in FOLDER: routes.yaml with one storage route, the pipeline it
    runs (pipelines/csat.py, a kfp @dsl.pipeline with a parameter), route tests, a CI workflow
    that runs `routes check` and `routes test`, and the schema your editor checks routes.yaml
    with. Both checks pass as written; edit from there.

    Refuses (exit 1) to write over a file that exists. Your repository may have packages named
    like kfp-trigger's own (pipelines/, events/): a pipeline's source is compiled in a process of
    its own, so neither shadows the other.
    """
    files = scaffold()
    taken = sorted(name for name in files if (folder / name).exists())
    if taken:
        raise click.ClickException(f"{folder} has {', '.join(taken)} already: nothing written")
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    if as_json:
        click.echo(json.dumps({"folder": str(folder), "files": sorted(files)}))
        return
    click.echo(f"wrote {len(files)} files into {folder}:")
    for name in sorted(files):
        click.echo(f"  {name}")
    click.echo(NEXT_STEPS.format(folder=folder))
