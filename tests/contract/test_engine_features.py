"""doctor's engine table (issue 37): each feature a pipeline uses is found in its compiled IR
(and kfp-kubernetes' platform spec), and an engine too old for one — the KFP API fake answering
release 2.5.0 — fails that pipeline in `doctor`, naming the feature and the release it needs;
Vertex runs no kfp-kubernetes settings. The same refusal stops a submit before the engine sees it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from functions.cli.doctor import checks
from functions.settings import Settings
from pipelines import engines
from pipelines.catalog import LoadedRoutes, load
from tests.support import ROOT, serving
from tests.support.kfp_fake import FakeKfp

# pipeline (tests/support/feature_pipelines.py, or a package) → the features its IR uses
USES = {
    "plain": set(),
    "branches": {"conditions"},
    "one_of": {"conditions", "one-of"},
    "parallelism": {"parallelism"},
    "collected": {"collected"},
    "retried": {"retry"},
    "retried_sub_pipeline": {"retry-sub-pipeline"},
    "imported": {"importer"},
    "imported_to_workspace": {"importer", "importer-to-workspace", "workspace"},
    "uncached": {"caching-options"},
    "secret_as_env": {"kubernetes"},
}
# what KFP 2.5.0 cannot run of them, and the release each needs
TOO_NEW_FOR_2_5 = {
    "collected": ("dsl.Collected", "2.14.0"),
    "retried_sub_pipeline": ("set_retry on a pipeline used as a task", "2.14.0"),
    "imported_to_workspace": ("download_to_workspace=True", "2.15.0"),
}


def routes_text() -> str:
    lines = ["pipelines:"]
    for name in USES:
        key = name.replace("_", "-")
        where = (
            "package: secret-as-env.yaml"
            if name == "secret_as_env"
            else f'source: "tests.support.feature_pipelines:{name}"'
        )
        lines.append(f"  {key}: {{{where}, backend: kfp}}")
    lines.append("routes:")
    for name in USES:
        key = name.replace("_", "-")
        lines += [
            f"  - name: {key}",
            f"    when: {{storage: {{bucket: {key}}}}}",
            f"    run: {{pipeline: {key}}}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("features")
    shutil.copy(ROOT / "tests" / "data" / "packages" / "secret-as-env.yaml", folder)
    (folder / "routes.yaml").write_text(routes_text())
    return folder


@pytest.fixture(scope="module")
def loaded(folder: Path) -> LoadedRoutes:
    return load(folder / "routes.yaml", folder / "packages")


@pytest.mark.parametrize("name", list(USES))
def test_the_ir_says_which_features_a_pipeline_uses(loaded: LoadedRoutes, name: str) -> None:
    assert loaded.catalog[name.replace("_", "-")].features == frozenset(USES[name])


def test_kfp_2_5_fails_in_doctor_each_pipeline_that_needs_a_later_release(folder: Path) -> None:
    settings = Settings(routes=folder / "routes.yaml", state_dir=folder / "state", kfp_host="", kfp_token="t")
    with serving(FakeKfp(version="2.5.0")) as url:
        findings = {f.check: f for f in checks(settings.replace(kfp_host=url), "")}
    failed = {
        check.removeprefix("pipeline ").removesuffix(" on kfp"): finding.detail
        for check, finding in findings.items()
        if check.startswith("pipeline ") and finding.status == "fail"
    }
    assert sorted(failed) == sorted(name.replace("_", "-") for name in TOO_NEW_FOR_2_5)
    for name, (what, needed) in TOO_NEW_FOR_2_5.items():
        detail = failed[name.replace("_", "-")]
        assert detail.startswith("KFP 2.5.0 cannot run "), detail
        assert what in detail
        assert detail.endswith(f"it needs KFP {needed} or later")
    assert findings["pipeline retried on kfp"].detail.endswith("can run it (retry)")


def test_every_feature_names_its_source_and_vertex_runs_no_kubernetes_settings(loaded: LoadedRoutes) -> None:
    assert all(feature.source and (feature.minimum or feature.unsupported) for feature in engines.TABLE)
    for release in ("2.14.0", "2.15.0", "2.17.0"):
        refused = {
            name
            for name, pipeline in loaded.catalog.items()
            if engines.refusal(engines.Engine("kfp", release), pipeline.features) is not None
        }
        assert refused == ({"imported-to-workspace"} if release == "2.14.0" else set()), release
    vertex = engines.refusal(engines.Engine("vertex"), loaded.catalog["secret-as-env"].features)
    assert vertex == (
        "Vertex AI Pipelines cannot run kfp-kubernetes settings (secrets, volumes, node selectors … in "
        "platforms.kubernetes): no release of it does"
    )
    assert engines.refusal(engines.Engine("vertex"), loaded.catalog["collected"].features) is None


def test_the_deploy_guide_shows_the_table_as_it_is() -> None:
    shown = (ROOT / "docs" / "deploy.md").read_text()
    for feature in engines.TABLE:
        kfp = "never" if "kfp" in feature.unsupported else feature.minimum.get("kfp", "any")
        vertex = "never" if "vertex" in feature.unsupported else "—"
        local = feature.minimum.get("local", "—")
        row = f"| `{feature.name}` | {feature.what} | {kfp} | {local} | {vertex} |"
        assert row in shown, row
