"""The deploy plan as a user runs it, and its gcloud script checked against the installed gcloud:
every command path exists and takes every flag the script passes (`gcloud … --help`, offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest

from events.routes import load_routes
from functions.cli.plan.deployment import build_plan
from functions.cli.plan.model import Gcloud
from tests.support import ROOT, kfp_trigger

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses

EXAMPLE = ROOT / "deploy" / "routes.example.yaml"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def commands() -> list[Gcloud]:
    plan = build_plan(load_routes(EXAMPLE.read_text()), "acme-analytics", "europe-west1")
    found = [command for r in plan.resources for command in (r.gcloud, r.exists) if command is not None]
    return found


def gcloud_help(path: tuple[str, ...]) -> str:
    gcloud = shutil.which("gcloud")
    assert gcloud is not None, "gcloud is part of this machine's image"
    done = subprocess.run(
        [gcloud, *path, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "HOME": tempfile.gettempdir(),
        },
    )
    assert done.returncode == 0, f"gcloud {' '.join(path)}: {done.stderr[-500:]}"
    return ANSI.sub("", done.stdout)


@pytest.mark.parametrize("path", sorted({command.path for command in commands()}), ids=" ".join)
def test_every_gcloud_command_and_flag_exists(path: tuple[str, ...]) -> None:
    text = gcloud_help(path)
    assert f"gcloud {' '.join(path)} -" in text, "the NAME line names this command"
    flags = {
        word.split("=", 1)[0]
        for c in commands()
        if c.path == path
        for word in c.args
        if word.startswith("--")
    }
    for flag in sorted(flags):
        name = flag[2:]
        assert re.search(rf"--(\[no-\])?{re.escape(name)}\b", text), f"gcloud {' '.join(path)} has no {flag}"


@pytest.mark.parametrize("output", ["terraform", "gcloud"])
def test_the_cli_writes_the_plan(output: str, tmp_path) -> None:
    done = subprocess.run(
        kfp_trigger(
            "deploy",
            "plan",
            "--routes",
            str(EXAMPLE),
            "--project",
            "acme-analytics",
            "--region",
            "europe-west1",
            "--format",
            output,
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    golden = ROOT / "deploy" / ("terraform/main.tf" if output == "terraform" else "gcloud/deploy.sh")
    assert done.stdout == golden.read_text()
    if output == "gcloud":
        script = tmp_path / "deploy.sh"
        script.write_text(done.stdout)
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def test_a_routes_file_that_does_not_validate_is_refused(tmp_path) -> None:
    broken = tmp_path / "routes.yaml"
    broken.write_text("routes: [{name: x}]\n")
    done = subprocess.run(
        kfp_trigger("deploy", "plan", "--routes", str(broken), "--project", "p", "--region", "r"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "routes[x].when: Field required" in done.stderr
