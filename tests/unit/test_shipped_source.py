"""What ships in the functions' source: `kfp-trigger deploy source`'s archive holds the packages
the functions import (without the CLI), main.py, routes.yaml with its pipelines compiled, and the
hashed requirements.txt, nothing else; it is the same bytes for the same files; and every module
in it imports alone."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from functions.cli.archive import entry_point, source_archive
from pipelines import catalog
from pipelines.catalog import LoadedRoutes
from tests.support import ROOT

EXAMPLE = ROOT / "deploy" / "routes.example.yaml"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    return catalog.load(EXAMPLE, tmp_path_factory.mktemp("packages"))


def archive_names(example: LoadedRoutes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(source_archive(EXAMPLE, example))) as archive:
        return archive.namelist()


def test_the_source_archive_holds_the_package_and_requirements_only(example: LoadedRoutes) -> None:
    names = archive_names(example)
    assert {"main.py", "requirements.txt", "routes.yaml"} <= set(names)
    assert {name.split("/", 1)[0] for name in names} == {
        "main.py",
        "requirements.txt",
        "routes.yaml",
        "events",
        "functions",
        "packages",
        "pipelines",
    }
    assert not [name for name in names if name.startswith("functions/cli/") or "__pycache__" in name]
    assert not [name for name in names if name.startswith("pipelines/examples/")], "examples ship compiled"
    assert [name for name in names if name.startswith("packages/")] == [
        f"packages/{example.catalog['survey-retrain'].package.name}"
    ]
    assert all(name.endswith((".py", ".yaml", ".txt", ".html")) for name in names)
    assert "functions/statuspage/templates/overview.html" in names  # read at run time
    assert source_archive(EXAMPLE, example) == source_archive(EXAMPLE, example), "same files, same bytes"


def test_main_py_is_the_entry_point_the_archive_writes() -> None:
    """The archive writes main.py (an installed kfp-trigger has none); the checkout's is the same."""
    assert (ROOT / "main.py").read_text() == entry_point()


def test_every_shipped_module_imports_without_the_tools(tmp_path: Path, example: LoadedRoutes) -> None:
    with zipfile.ZipFile(io.BytesIO(source_archive(EXAMPLE, example))) as archive:
        archive.extractall(tmp_path)
        files = archive.namelist()
    modules = sorted(
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in files
        if name.endswith(".py")
    )
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(tmp_path)!r}), module.__file__\n"
        "assert not [m for m in sys.modules if m.startswith('functions.cli')]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_only_bootstrap_reads_the_environment_and_nothing_writes_it() -> None:
    """Library code gets `Settings`; the CLI's options read their variables through click."""
    readers = []
    for path in sorted((ROOT / "functions").rglob("*.py")) + sorted((ROOT / "pipelines").rglob("*.py")):
        text = path.read_text()
        if any(word in text for word in ("os.environ", "os.getenv", "os.putenv")):
            readers.append(str(path.relative_to(ROOT)))
    assert readers == ["functions/bootstrap.py"]
    assert "os.environ[" not in (ROOT / "functions" / "bootstrap.py").read_text()


def test_the_notify_image_pins_the_kfp_trio_kfp_trigger_runs_and_every_hash() -> None:
    """The exit step's image runs the kfp that compiled its spec, and installs nothing unhashed."""
    import re

    pins = dict(re.findall(r'"(kfp[a-z-]*)==([^"]+)"', (ROOT / "pyproject.toml").read_text()))
    assert set(pins) == {"kfp", "kfp-pipeline-spec", "kfp-server-api"}
    locked = (ROOT / "deploy" / "notify-image" / "requirements.txt").read_text()
    packages = dict(re.findall(r"^([a-z0-9-]+)==(\S+) \\$", locked, flags=re.M))
    assert {name: packages.get(name) for name in pins} == pins
    assert "google-cloud-pubsub" in packages
    hashed = re.findall(r"^([a-z0-9-]+)==\S+ \\\n    --hash=sha256:[0-9a-f]{64}", locked, flags=re.M)
    assert sorted(hashed) == sorted(packages), "every package is pinned by its hash"


def test_the_lock_file_satisfies_pyproject_and_pins_every_hash() -> None:
    """requirements.txt is what the function's build installs: current, complete and hashed."""
    import re
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked_text = (ROOT / "deploy" / "requirements.txt").read_text()
    locked = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", locked_text, flags=re.M)
    }
    for dependency in map(Requirement, project["dependencies"]):
        version = locked.get(canonicalize_name(dependency.name))
        assert version is not None, f"{dependency.name} is not in requirements.txt: refresh the lock"
        assert dependency.specifier.contains(version), f"{dependency.name}=={version} is outside {dependency}"
    hashed = re.findall(
        r"^([A-Za-z0-9_.-]+)==\S+ \\\n    --hash=sha256:[0-9a-f]{64}", locked_text, flags=re.M
    )
    assert len(hashed) == len(locked), "every locked package carries its hashes"
    assert "--extra-index-url" not in locked_text, "no machine's own index"
    assert "--find-links" not in locked_text


def test_the_wheel_lists_every_package_of_the_product() -> None:
    """pyproject.toml lists the packages (one is mapped onto deploy/): a new one must be added."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        path.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for top in ("events", "functions", "pipelines")
        for path in (ROOT / top).rglob("__init__.py")
    }
    assert listed == folders | {"functions.cli.bundle"}
