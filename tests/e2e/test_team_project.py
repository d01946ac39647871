"""A team's own project, from `init` to its first automatic run as deployed.

Everything runs from folders outside the checkout, with the environment a new user has (no
KFP_TRIGGER_* variables, no PYTHONPATH). The rehearsal unzips `deploy source`'s archive into a
fresh folder and serves it with functions-framework from a virtual environment that has only the
archive's requirements.txt installed: if the archive misses anything the function imports or
reads (a module, a pipeline package), the event is not answered and the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from events.eventarc import message_published
from pipelines.notice import RUN_KEY_ATTRIBUTE, Notice
from tests.conftest import PROJECT
from tests.support import ROOT, free_port, kfp_trigger, server, serving, storage_event
from tests.support.kfp_fake import FakeKfp
from tests.support.pubsub import pull, topic_with_subscription

pytestmark = pytest.mark.slow  # the CLI, the compiler and servers in subprocesses

EMULATORS = ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")


def newcomer(**extra: str) -> dict[str, str]:
    """A new user's environment: no KFP_TRIGGER_* variables, no PYTHONPATH."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", *EMULATORS)}
    return kept | extra


def cli(folder: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kfp_trigger(*args), cwd=folder, env=newcomer(**extra), capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def team(tmp_path: Path) -> Path:
    done = cli(tmp_path, "init", "team")
    assert done.returncode == 0, done.stderr
    return tmp_path / "team"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_a_new_project_passes_routes_check_and_routes_test_as_written(team: Path) -> None:
    check = cli(team, "routes", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 route(s), 1 pipeline(s)" in check.stdout
    tested = cli(team, "routes", "test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed, 0 failed" in tested.stdout
    assert cli(team.parent, "init", "team").returncode == 1, "init never writes over a project"


def test_a_team_package_named_like_ours_loads_and_neither_shadows_the_other(team: Path) -> None:
    """Teams' repositories have their own pipelines/ (with or without __init__.py): the team's
    pipeline imports its own pipelines.steps (kfp-trigger's pipelines has none), while
    kfp-trigger's own pipelines package compiles, checks and routes."""
    (team / "pipelines" / "steps.py").write_text("LEARNING_RATE = 0.5\n")
    edit(
        team / "pipelines" / "csat.py",
        "from kfp import dsl\n",
        "from kfp import dsl\n\nfrom pipelines.steps import LEARNING_RATE\n",
    )
    edit(
        team / "pipelines" / "csat.py",
        "learning_rate: float = 0.1)",
        "learning_rate: float = LEARNING_RATE)",
    )
    edit(
        team / "routes.yaml",
        "    params:                                  # defaults for every route that runs it\n",
        "",
    )
    edit(
        team / "routes.yaml", "      learning_rate: 0.1\n", ""
    )  # the pipeline's own default, from pipelines.steps
    edit(team / "route-tests" / "csat.yaml", "          learning_rate: 0.1\n", "")  # not a route's any more
    for package in (False, True):
        if package:
            (team / "pipelines" / "__init__.py").write_text("")
        check = cli(team, "routes", "check", "--json")
        assert check.returncode == 0, check.stdout + check.stderr
        tested = cli(team, "routes", "test")
        assert tested.returncode == 0, tested.stdout + tested.stderr


def test_deploy_source_refuses_what_the_functions_could_not_load(team: Path) -> None:
    local = cli(team, "deploy", "source", "--out", "source.zip")
    assert local.returncode == 1
    assert "routes csat-landed run on backend: local" in local.stderr
    edit(team / "routes.yaml", "backend: local", "backend: kfp")
    edit(
        team / "pipelines" / "csat.py",
        "from kfp import dsl\n",
        "from kfp import dsl\nimport no_such_module\n",
    )
    broken = cli(team, "deploy", "source", "--out", "source.zip")
    assert broken.returncode == 1
    assert "pipelines[csat-retrain].source: cannot build" in broken.stderr
    assert "No module named 'no_such_module'" in broken.stderr
    assert not (team / "source.zip").exists()


def test_the_terraform_module_is_written_into_the_team_folder_and_planned_there(team: Path) -> None:
    edit(team / "routes.yaml", "backend: local", "backend: kfp")
    plan = ("deploy", "plan", "--project", "acme-analytics", "--region", "europe-west1")
    missing = cli(team, *plan, KFP_TRIGGER_KFP_HOST="https://kfp.example")
    assert missing.returncode == 1
    assert "kfp-trigger deploy module" in missing.stderr
    assert cli(team, "deploy", "module").returncode == 0
    module = sorted(p.name for p in (team / "deploy" / "terraform").glob("*.tf"))
    assert module == sorted(p.name for p in (ROOT / "deploy" / "terraform").glob("*.tf"))
    planned = cli(team, *plan, KFP_TRIGGER_KFP_HOST="https://kfp.example")
    assert planned.returncode == 0, planned.stderr
    inputs = json.loads((team / "deploy" / "terraform" / "routes.auto.tfvars.json").read_text())
    assert inputs["buckets"] == ["my-team-landing"]


@pytest.fixture(scope="session")
def function_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with only the function's requirements.txt installed (as the Cloud
    Functions build does): kfp-trigger itself is not importable from it."""
    folder = tmp_path_factory.mktemp("function-venv")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    for command in (
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "-r",
            str(ROOT / "deploy" / "requirements.txt"),
        ],
    ):
        subprocess.run(command, check=True, capture_output=True, timeout=900)
    found = subprocess.run(
        [str(python), "-c", "import functions"], cwd=folder, env=newcomer(), capture_output=True, timeout=60
    )
    assert found.returncode != 0, "the checkout must not be importable from the function's environment"
    return python


@pytest.fixture
def shipped(team: Path, tmp_path: Path) -> Path:
    """init → one parameter edited (and the cluster backend) → check → test → deploy source,
    unzipped into a folder of its own."""
    edit(team / "routes.yaml", "learning_rate: 0.1", "learning_rate: 0.25")
    edit(team / "route-tests" / "csat.yaml", "learning_rate: 0.1", "learning_rate: 0.25")
    edit(team / "routes.yaml", "backend: local", "backend: kfp")
    for command in (("routes", "check"), ("routes", "test"), ("deploy", "source", "--out", "source.zip")):
        done = cli(team, *command)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    folder = tmp_path / "function"
    with zipfile.ZipFile(team / "source.zip") as archive:
        archive.extractall(folder)
        names = archive.namelist()
    assert not [name for name in names if name.startswith(("route-tests/", ".github/", "functions/cli/"))]
    assert "pipelines/csat.py" not in names, "the team's Python ships compiled, not as source"
    return folder


@pytest.fixture
def function(
    shipped: Path, function_python: Path, firestore_emulator: str, pubsub_emulator: str, storage_emulator: str
) -> Iterator[dict[str, Any]]:
    """Both targets served from the unzipped archive alone, configured as the Terraform module
    configures them, against the emulators and the KFP fake."""
    from google.cloud.storage import Client

    storage = Client(project=PROJECT)
    if not storage.bucket("my-team-artifacts").exists():  # the pipeline root, as the team has it
        storage.create_bucket("my-team-artifacts")
    name = uuid.uuid4().hex[:8]
    results, subscription = topic_with_subscription(f"results-{name}")
    quarantine, _ = topic_with_subscription(f"quarantine-{name}")
    fake = FakeKfp()
    with serving(fake) as kfp_url:
        env = newcomer(
            GOOGLE_CLOUD_PROJECT=PROJECT,
            KFP_TRIGGER_STATE_DIR=str(shipped.parent / "tmp-kfp-trigger"),
            KFP_TRIGGER_LEDGER=f"firestore://{PROJECT}/runs-{name}",
            KFP_TRIGGER_RESULTS=f"pubsub://{results}",
            KFP_TRIGGER_QUARANTINE=f"pubsub://{quarantine}",
            KFP_TRIGGER_ALERTS=f"pubsub://{quarantine}",
            KFP_TRIGGER_COMPLETION_TOPIC=f"pubsub://projects/{PROJECT}/topics/completions-{name}",
            KFP_TRIGGER_STORAGE="gcs",
            KFP_TRIGGER_AUTH="none",
            KFP_TRIGGER_KFP_HOST=kfp_url,
        )
        with (
            _serving("handle_event", function_python, shipped, env) as events,
            _serving("handle_completion", function_python, shipped, env) as completions,
        ):
            yield {"fake": fake, "results": subscription, "events": events, "completions": completions}


def _serving(target: str, python: Path, folder: Path, env: dict[str, str]) -> Any:
    """functions-framework serving `target` of the main.py in `folder`, as Cloud Functions runs it."""
    port = free_port()
    command = [str(python.parent / "functions-framework"), "--target", target, "--port", str(port)]
    return server(command, env, port, folder.parent / f"{target}.log", cwd=folder)


def test_the_deployed_function_runs_the_team_pipeline_from_its_archive_alone(
    function: dict[str, Any],
) -> None:
    headers, body = storage_event("my-team-landing", "csat/2026-12-01/responses.csv", generation=7)
    answer = requests.post(function["events"], data=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    (decision,) = answer.json()["decisions"]
    assert decision["outcome"] == "run", decision
    fake: FakeKfp = function["fake"]
    (run_id,) = fake.runs
    parameters = fake.runs[run_id]["runtime_config"]["parameters"]
    assert parameters["learning_rate"] == 0.25, "the team's edit reached the cluster"
    assert parameters["responses_uri"] == "gs://my-team-landing/csat/2026-12-01/responses.csv"

    fake.states[run_id] = "SUCCEEDED"
    notice = Notice(decision["run_key"], "SUCCEEDED")
    topic = f"projects/{PROJECT}/topics/completions"
    headers, body = message_published(topic, notice.encode(), {RUN_KEY_ATTRIBUTE: notice.run_key})
    done = requests.post(function["completions"], json=body, headers=headers, timeout=120)
    assert done.status_code == 200, done.text
    (message,) = pull(function["results"], 1, wait=90)
    result = json.loads(message.data)
    assert (result["run_key"], result["run_id"], result["state"]) == (
        decision["run_key"],
        run_id,
        "SUCCEEDED",
    )
    assert result["pipeline"] == "csat-retrain"


def test_the_wheel_carries_what_a_team_project_needs(tmp_path: Path) -> None:
    """Installed from its wheel (not a checkout), kfp-trigger still has the Terraform module, the
    hashed requirements, the example routes and init's project; and no top-level main module."""
    import shutil

    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ there
    litter = (".git", ".venv", ".*_cache", ".kfp-trigger", "build", "*.egg-info", "__pycache__", "tests")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*litter))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("kfp_trigger-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundle = "functions/cli/bundle/"
    module = {f"{bundle}terraform/{p.name}" for p in (ROOT / "deploy" / "terraform").glob("*.tf")}
    assert module <= names
    assert {f"{bundle}requirements.txt", f"{bundle}routes.example.yaml"} <= names
    shipped = zipfile.ZipFile(wheel).read(f"{bundle}requirements.txt")
    assert shipped == (ROOT / "deploy" / "requirements.txt").read_bytes()
    template = ROOT / "functions" / "cli" / "template"
    assert {p.relative_to(ROOT).as_posix() for p in template.rglob("*") if p.is_file()} <= names
    assert "main.py" not in names, "main.py is written into the archive, never installed"
    assert not [name for name in names if name.startswith("tests/")]
