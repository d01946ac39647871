"""`kfp-trigger doctor`: before the first event, whether everything the settings and routes.yaml
name is there and can be used — each check ok / warn / fail, with the fix.

    routes        routes.yaml passes `routes check` (every pipeline builds)
    engines       each engine in use answers and says its release; each pipeline against the
                  features it needs (functions/service/doctor.py, the same checks every cold
                  start logs)
    ledger        the ledger answers a read
    sinks         results, quarantine, alerts: a Pub/Sub topic exists and this identity may
                  publish (TestIamPermissions), a JSONL folder can be written
    completion    the completion topic exists, and the pipelines' identity may publish to it
    dead letters  the dead-letter subscription exists, and this identity may take its messages
    roots         each cluster pipeline's gs:// pipeline root exists, and the pipelines' identity
                  may write objects there
    secrets       the signature secrets routes name are set
    settings      no KFP_TRIGGER_* variable is misspelt (an unknown one is ignored silently)

Permissions are tested, not guessed: TestIamPermissions answers which of the asked permissions
the caller holds. For the pipelines' identity (`--runner`, default KFP_TRIGGER_VERTEX_SERVICE_ACCOUNT)
the doctor asks as that identity, by impersonating it (google-auth; you need
roles/iam.serviceAccountTokenCreator on it); without one it says what it could not test.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from events.errors import RoutesError
from functions.cli import common
from functions.service.doctor import Finding
from functions.settings import Settings, SettingsError

PUBLISH = "pubsub.topics.publish"
CONSUME = "pubsub.subscriptions.consume"
CREATE_OBJECTS = "storage.objects.create"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


@click.command()
@click.option("--routes", "routes", envvar="KFP_TRIGGER_ROUTES", help="routes file  [default: routes.yaml]")
@click.option(
    "--state-dir", envvar="KFP_TRIGGER_STATE_DIR", help="ledger, results, runs  [default: .kfp-trigger]"
)
@click.option(
    "--runner",
    default=None,
    help="the pipelines' service account, whose permissions on the completion topic and pipeline "
    "roots are tested by impersonating it  [default: KFP_TRIGGER_VERTEX_SERVICE_ACCOUNT]",
)
@click.option("--json", "as_json", is_flag=True, help="print {ok, findings: [{check, status, detail, fix}]}")
def doctor(routes: str | None, state_dir: str | None, runner: str | None, as_json: bool) -> None:
    """Check, before the first event, that the engines can run your pipelines and that every
    resource the settings and routes.yaml name exists and may be used. Each check is ok, warn
    or fail, with the fix; exits 1 if any fails (a warning does not).

    \b
    Checks: routes.yaml (as `routes check`); each engine answers and its release (KFP's
    healthz tag) against what each compiled pipeline needs (an exit handler with a final
    status needs KFP 2.14.0, …: pipelines/engines.py); the ledger; the results, quarantine and
    alerts sinks; the completion topic; each cluster pipeline's gs:// root; the signature
    secrets routes name. Writes nothing.
    """
    settings = common.settings(routes, state_dir)
    findings = list(checks(settings, runner if runner is not None else settings.vertex_service_account))
    failed = any(finding.status == "fail" for finding in findings)
    if as_json:
        common.emit({"ok": not failed, "findings": [finding.as_json() for finding in findings]})
    else:
        width = max(len(finding.check) for finding in findings)
        for finding in findings:
            mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[finding.status]
            click.echo(f"{mark}  {finding.check:<{width}}  {finding.detail}")
            if finding.fix and finding.status != "ok":
                click.echo(f"      {'':<{width}}  fix: {finding.fix}")
        counts = {status: sum(f.status == status for f in findings) for status in ("ok", "warn", "fail")}
        click.echo(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failed")
    if failed:
        raise SystemExit(1)


def checks(settings: Settings, runner: str) -> Iterator[Finding]:
    """Every check, in the order a reader fixes them."""
    from functions import bootstrap
    from functions.service.doctor import engine_findings
    from pipelines import catalog as routes_catalog

    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = routes_catalog.load(settings.routes, Path(scratch), settings.notify_image)
        except RoutesError as exc:
            yield Finding(
                "routes",
                "fail",
                f"{settings.routes}: {len(exc.problems)} problem(s), the first: {exc.problems[0]}",
                f"kfp-trigger routes check {settings.routes} lists each with its line",
            )
            loaded = None
    if loaded is not None:
        yield Finding(
            "routes",
            "ok",
            f"{settings.routes}: {len(loaded.rules)} route(s), {len(loaded.catalog)} pipeline(s)",
        )
        try:
            backends = bootstrap.backends_for(settings, loaded.catalog)
        except SettingsError as exc:
            yield Finding("engines", "fail", str(exc), "set it (docs/configuration.md)")
        else:
            yield from engine_findings(backends, loaded.catalog)
    yield ledger(settings)
    for name, url in (
        ("results", settings.results_url),
        ("quarantine", settings.quarantine_url),
        ("alerts", settings.alerts_url),
    ):
        yield sink(name, url)
    if settings.completion_topic:
        completion = settings.completion_topic.removeprefix("pubsub://")
        yield isolated("completion", lambda: topic("completion", completion, runner))
    if settings.dead_letters:
        yield isolated("dead letters", lambda: dead_letters(settings.dead_letters))
    secret_names = bootstrap.signature_secrets(loaded.rules) if loaded is not None else {}
    for unknown in bootstrap.unknown_settings(also=secret_names):
        yield Finding("settings", "fail", unknown, "rename it, or remove it: it is ignored")
    if loaded is not None:
        yield from roots(settings, loaded.catalog, runner)
        secrets = bootstrap.signature_secrets(loaded.rules)
        missing = [name for name, value in secrets.items() if not value]
        for name in missing:
            yield Finding(
                "secrets",
                "fail",
                f"{name} is not set: a route checks signatures with it",
                f"set {name} (mount it from Secret Manager); the function refuses to start without it",
            )
        if secrets and not missing:
            yield Finding("secrets", "ok", "every signature secret routes name is set")


CREDENTIALS_FIX = "run where the function's identity is, or sign in: gcloud auth application-default login"


def isolated(name: str, check: Callable[[], Finding]) -> Finding:
    """A check's finding; whatever it raised (no credentials, an API that does not answer) is
    its failure, so that one check cannot hide the others."""
    try:
        return check()
    except Exception as exc:
        fix = CREDENTIALS_FIX if type(exc).__name__ == "DefaultCredentialsError" else ""
        return Finding(name, "fail", f"{type(exc).__name__}: {exc}"[:400], fix)


def ledger(settings: Settings) -> Finding:
    """The ledger answers a read (the pause flag). A SQLite ledger not made yet is made at the
    first event, in a folder that must be writable."""
    from functions import bootstrap
    from functions.service.limits import PAUSED

    url = settings.ledger_url
    if url.startswith("sqlite:") and not bootstrap.path_of(url).exists():
        return writable("ledger", bootstrap.path_of(url), "made at the first event")
    try:
        store = bootstrap.ledger_from(url, settings.retention_days)
        store.read(time.time(), (), (), (PAUSED,))
    except Exception as exc:  # whatever the client raises: the doctor reports it
        return Finding("ledger", "fail", f"{url}: {type(exc).__name__}: {exc}"[:400], LEDGER_FIX)
    return Finding("ledger", "ok", f"{url} answers")


LEDGER_FIX = (
    "check KFP_TRIGGER_LEDGER; on Firestore, that the database exists (Native mode) and the "
    "function's identity has roles/datastore.user"
)


def writable(check: str, path: Path, when: str) -> Finding:
    """A file the service writes: its folder exists and may be written, or can be made."""
    path = Path("/" + str(path).lstrip("/"))  # a sqlite:/// URL's path may start with //
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("/"))
    if os.access(folder, os.W_OK):
        return Finding(check, "ok", f"{path} ({when}; {folder} is writable)")
    return Finding(
        check, "fail", f"{path}: {folder} is not writable", f"make {folder} writable, or set the URL"
    )


def sink(name: str, url: str) -> Finding:
    scheme = urlsplit(url).scheme
    if scheme == "jsonl":
        from functions import bootstrap

        return writable(name, bootstrap.path_of(url), "appended to")
    return isolated(name, lambda: topic(name, url.removeprefix("pubsub://"), ""))


def topic(name: str, path: str, runner: str) -> Finding:
    """A topic exists, and who publishes there may: this identity (a sink) or the pipelines'
    (`runner`: the completion topic)."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    try:
        pubsub_v1.PublisherClient().get_topic(topic=path, timeout=30)
    except exceptions.NotFound:
        project, _, short = path.removeprefix("projects/").partition("/topics/")
        return Finding(
            name,
            "fail",
            f"topic {path} does not exist",
            f"gcloud pubsub topics create {short} --project {project} (or apply the Terraform module)",
        )
    except exceptions.GoogleAPICallError as exc:
        return Finding(name, "fail", f"topic {path}: {type(exc).__name__}: {exc.message}"[:400], TOPIC_FIX)
    if name == "completion" and not runner:
        return Finding(
            name,
            "warn",
            f"topic {path} exists; whether the pipelines may publish to it was not tested",
            "pass --runner SERVICE_ACCOUNT (the pipelines' identity) to test it as that identity",
        )
    who = f"the pipelines' identity {runner}" if runner else "this identity"
    return permitted(name, f"topic {path} exists", who, PUBLISH, lambda: _publish_granted(path, runner))


TOPIC_FIX = "check the topic's name and that this identity has roles/pubsub.viewer on it"


def dead_letters(path: str) -> Finding:
    """The subscription the reconciler takes dead letters from exists, and this identity may."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    with pubsub_v1.SubscriberClient() as client:
        try:
            client.get_subscription(subscription=path, timeout=30)
        except exceptions.NotFound:
            return Finding("dead letters", "fail", f"subscription {path} does not exist", APPLY)
        except exceptions.GoogleAPICallError as exc:
            return Finding("dead letters", "fail", f"subscription {path}: {exc.message}"[:400], APPLY)

        def granted() -> bool:
            asked = {"resource": path, "permissions": [CONSUME]}
            return CONSUME in client.test_iam_permissions(request=asked, timeout=30).permissions

        return permitted("dead letters", f"subscription {path} exists", "this identity", CONSUME, granted)


APPLY = "check KFP_TRIGGER_DEAD_LETTERS (the module's PREFIX-dead-letter-hold), or apply the Terraform module"


def permitted(name: str, found: str, who: str, permission: str, granted: Callable[[], bool]) -> Finding:
    """The finding of a TestIamPermissions call: `granted()` says whether `who` holds it."""
    from google.api_core import exceptions

    try:
        holds = granted()
    except exceptions.MethodNotImplemented:
        return Finding(
            name, "warn", f"{found}; {permission} not tested: this endpoint (an emulator) has no IAM"
        )
    except Exception as exc:  # impersonation refused, no credentials: say so
        return Finding(
            name,
            "warn",
            f"{found}; {permission} for {who} not tested: {type(exc).__name__}: {exc}"[:400],
            "grant yourself roles/iam.serviceAccountTokenCreator on the runner to test as it",
        )
    if holds:
        return Finding(name, "ok", f"{found}; {who} holds {permission}")
    return Finding(
        name, "fail", f"{found}, but {who} lacks {permission}", f"grant {who} a role with {permission}"
    )


def _credentials(runner: str) -> Any:
    """Credentials that act as `runner` (impersonated), or None: the ambient identity."""
    if not runner:
        return None
    import google.auth
    from google.auth import impersonated_credentials

    source, _ = google.auth.default(scopes=SCOPES)
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source, target_principal=runner, target_scopes=list(SCOPES)
    )


def _publish_granted(path: str, runner: str) -> bool:
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient(credentials=_credentials(runner))
    answer = client.test_iam_permissions(request={"resource": path, "permissions": [PUBLISH]}, timeout=30)
    return PUBLISH in answer.permissions


def roots(settings: Settings, catalog: Any, runner: str) -> Iterator[Finding]:
    """Each gs:// pipeline root of a cluster pipeline: the bucket exists and the pipelines'
    identity may create objects in it."""
    seen: set[str] = set()
    for pipeline in catalog.values():
        root = pipeline.pipeline_root or (
            settings.vertex_pipeline_root if pipeline.backend == "vertex" else ""
        )
        if pipeline.backend == "local" or not root.startswith("gs://") or root in seen:
            continue
        seen.add(root)
        check = f"root {root}"
        yield isolated(check, functools.partial(bucket, check, root, runner))


def bucket(name: str, root: str, runner: str) -> Finding:
    from google.api_core import exceptions
    from google.cloud import storage

    bucket_name = root.removeprefix("gs://").split("/", 1)[0]
    try:
        found = storage.Client().bucket(bucket_name).exists(timeout=30)
    except exceptions.GoogleAPICallError as exc:
        return Finding(name, "fail", f"bucket {bucket_name}: {type(exc).__name__}: {exc.message}"[:400])
    if not found:
        return Finding(
            name,
            "fail",
            f"bucket {bucket_name} does not exist",
            f"gcloud storage buckets create gs://{bucket_name}",
        )
    if not runner:
        return Finding(
            name,
            "warn",
            f"bucket {bucket_name} exists; whether the pipelines may write there was not tested",
            "pass --runner SERVICE_ACCOUNT (the pipelines' identity) to test it as that identity",
        )

    def granted() -> bool:
        client = storage.Client(credentials=_credentials(runner))
        return CREATE_OBJECTS in client.bucket(bucket_name).test_iam_permissions([CREATE_OBJECTS], timeout=30)

    return permitted(
        name, f"bucket {bucket_name} exists", f"the pipelines' identity {runner}", CREATE_OBJECTS, granted
    )
