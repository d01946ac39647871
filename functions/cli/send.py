"""`kfp-trigger send`: post one event to a running stack (`kfp-trigger dev`, or any URL serving
`handle_event`), built as the platform delivers it: an object written to a bucket, a message on a
topic (signed as the product signs it when a route on that topic checks signatures), a Cloud
Scheduler tick. What the stack answered is printed: each route's decision."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click

from events.eventarc import Delivery, message_published, object_finalized, scheduler_tick
from functions.cli import common

DEFAULT_URL = "http://127.0.0.1:8080"
PROJECT = "local"  # the project of a topic named by its short name, as the dev stack's are


def _url_option(command: Any) -> Any:
    return click.option(
        "--url", default=DEFAULT_URL, show_default=True, help="the running stack (kfp-trigger dev)"
    )(click.option("--json", "as_json", is_flag=True, help="print the stack's answer as JSON")(command))


@click.group()
def send() -> None:
    """Post one event to a running stack (kfp-trigger dev), as the platform would deliver it.

    \b
    Examples:
      kfp-trigger send object acme-survey-landing/responses/tenant-a/2026-12-07/_SUCCESS
      kfp-trigger send message product-events --data '{"event_id": "e-1", "type": "survey.closed"}' \\
          --attribute producer=survey-service
      kfp-trigger send tick survey-nightly-retrain
    """


@send.command("object")
@click.argument("path", metavar="BUCKET/NAME")
@click.option("--size", default=1, show_default=True, type=click.IntRange(min=0), help="bytes")
@click.option("--content-type", default="", help="the object's content type")
@_url_option
def send_object(path: str, size: int, content_type: str, url: str, as_json: bool) -> None:
    """An object written: a `finalized` event for BUCKET/NAME (generation: now, in µs)."""
    bucket, _, name = path.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise click.BadParameter("give BUCKET/NAME, e.g. acme-landing/in/a.csv", param_hint="BUCKET/NAME")
    generation = time.time_ns() // 1000
    _post(
        url,
        object_finalized(bucket, name, generation=generation, size=size, content_type=content_type),
        as_json,
    )


@send.command("message")
@click.argument("topic")
@click.option(
    "--data",
    "data",
    default="{}",
    show_default=True,
    help="the message's data (JSON, as the product sends it)",
)
@click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE", help="an attribute (repeat)")
@click.option(
    "--routes", envvar="KFP_TRIGGER_ROUTES", help="routes file, for signing  [default: routes.yaml]"
)
@_url_option
def send_message(
    topic: str, data: str, attributes: tuple[str, ...], routes: str | None, url: str, as_json: bool
) -> None:
    """A message on TOPIC (a short name, or projects/P/topics/T), signed with the route's secret
    (its variable must be set) when a route on TOPIC checks signatures."""
    pairs = dict(_pair(attribute) for attribute in attributes)
    full = topic if "/" in topic else f"projects/{PROJECT}/topics/{topic}"
    body = data.encode()
    secret = _signing_secret(full, routes)
    if secret is not None:
        from events import signatures

        stamp = int(time.time())
        pairs |= {"timestamp": str(stamp)}
        pairs["signature"] = signatures.sign(secret, stamp, full, pairs, body)
    _post(url, message_published(full, body, pairs), as_json)


@send.command("tick")
@click.argument("job")
@click.option("--at", "at", default=None, help="when the job fired (RFC 3339)  [default: now]")
@_url_option
def send_tick(job: str, at: str | None, url: str, as_json: bool) -> None:
    """A tick of Cloud Scheduler job JOB, on the schedules topic (KFP_TRIGGER_SCHEDULES_TOPIC)."""
    moment = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else datetime.now(UTC)
    topic = common.settings().schedules_topic
    _post(
        url,
        scheduler_tick(job, moment if moment.tzinfo else moment.replace(tzinfo=UTC), topic=topic),
        as_json,
    )


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r}: give KEY=VALUE", param_hint="--attribute")
    return key, value


def _signing_secret(topic: str, routes: str | None) -> str | None:
    """The secret of the first route on `topic` that checks signatures, or None when none does."""
    from pathlib import Path

    from events.routes import load_routes
    from events.rules import listeners
    from functions import bootstrap

    path = Path(routes or "routes.yaml")
    if not path.exists():
        return None
    rules = listeners(load_routes(path.read_text()).rules)
    short = topic.rsplit("/", 1)[-1]
    for rule in rules:
        if rule.signature is not None and rule.topic in (topic, short):
            value = bootstrap.signature_secrets([rule]).get(rule.signature.secret, "")
            if not value:
                raise click.ClickException(
                    f"route {rule.name!r} checks signatures: set {rule.signature.secret} to sign the message"
                )
            return value
    return None


def _post(url: str, delivery: Delivery, as_json: bool) -> None:
    import requests

    headers, data = delivery
    try:
        answer = requests.post(f"{url.rstrip('/')}/handle_event", json=data, headers=headers, timeout=120)
    except requests.RequestException as exc:
        raise click.ClickException(
            f"no stack answers at {url} ({type(exc).__name__}): start one with kfp-trigger dev"
        ) from exc
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if as_json:
        common.emit({"status": answer.status_code, "answer": body})
        return
    click.echo(f"{answer.status_code} event {headers['ce-id']}")
    if "outcome" in body:
        click.echo(f"  {body['outcome']}: {body.get('reason', '')}".rstrip(": "))
    for decision in body.get("decisions", []):
        detail = decision.get("run_key") or decision.get("reason", "")
        click.echo(f"  {decision.get('outcome')} {decision.get('route', '')} {detail}".rstrip())
    if "error" in body:
        click.echo(f"  error: {body['error']}")
    if answer.status_code >= 300:
        raise SystemExit(1)
