"""What a route names must be able to exist: buckets, topics, datasets, cron times, time zones.

Each check adds a problem, in the loader's words, where routes.yaml names something the platform
could never deliver an event from (a route that would never fire).
"""

from __future__ import annotations

import re

from events.schema import RouteModel, ScheduleWhen

# Names that exist, by the platforms' own rules: a route naming anything else never hears an event.
# https://cloud.google.com/storage/docs/buckets#naming, https://cloud.google.com/pubsub/docs/create-topic
# (resource names), https://cloud.google.com/bigquery/docs/datasets#dataset-naming
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_TOPIC = re.compile(r"[A-Za-z][A-Za-z0-9._~+%-]{2,254}")
_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")


def check_bucket(bucket: str, where: str, problems: list[str]) -> None:
    if bucket.startswith("gs://") or "/" in bucket:
        problems.append(f"{where}: {bucket!r} is not a bucket name: write the name alone, without gs:// or /")
    elif not _BUCKET.fullmatch(bucket) or any(len(part) > 63 for part in bucket.split(".")):
        problems.append(
            f"{where}: {bucket!r} cannot be a bucket's name (lower-case letters, digits, - _ and ., "
            "starting and ending with a letter or digit): no storage trigger would ever watch it"
        )


def check_topic(topic: str, where: str, problems: list[str]) -> None:
    if "/" in topic and not re.match(r"^projects/[^/]+/topics/[^/]+$", topic):
        problems.append(f"{where}: expected a short name or projects/P/topics/T")
        return
    short = topic.rsplit("/", 1)[-1]
    if not _TOPIC.fullmatch(short) or short.startswith("goog"):
        problems.append(
            f"{where}: {short!r} cannot be a topic's name (3 to 255 of letters, digits, - _ . ~ + %, "
            "starting with a letter, not with goog): no message would ever arrive on it"
        )


def check_table(table: str, where: str, problems: list[str]) -> None:
    parts = table.split(".")
    if len(parts) != 3:
        problems.append(f"{where}: expected project.dataset.table")
    elif "{" not in parts[1] and "*" not in parts[1] and not _DATASET.fullmatch(parts[1]):
        problems.append(
            f"{where}: {parts[1]!r} cannot be a dataset's name (letters, digits and _ only): "
            "no job would ever write to it"
        )


def check_expect(model: RouteModel, where: str, problems: list[str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if model.expect is None:
        return
    if model.expect.every < 60 or 86400 % model.expect.every:
        problems.append(f"{where}.expect.every: a whole number of windows per day (1d, 12h, 1h, 30m …)")
    try:
        ZoneInfo(model.expect.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}.expect.timezone: unknown time zone {model.expect.timezone!r}")


def _fires(cron: str) -> bool:
    """Whether a valid cron names a time that comes (croniter searches some years ahead)."""
    from datetime import datetime

    from croniter import CroniterBadDateError, croniter

    try:
        croniter(cron, datetime(2026, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def check_schedule(schedule: ScheduleWhen, where: str, problems: list[str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import croniter

    if not croniter.is_valid(schedule.cron):
        problems.append(
            f"{where}.cron: {schedule.cron!r} is not a cron expression: five fields, minute hour "
            'day-of-month month day-of-week, e.g. "0 3 * * *" (03:00 every day)'
        )
    elif not _fires(schedule.cron):
        problems.append(
            f"{where}.cron: {schedule.cron!r} names no date that exists (e.g. 30 February): it never fires"
        )
    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}.timezone: unknown time zone {schedule.timezone!r}")


# An Artifact Registry KFP template: https://LOCATION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG-or-VERSION
# (kfp.registry's kfp_pkg_dev.json: download_tag_url and download_version_url, "{host}/{package}/{tag}")
TEMPLATE = re.compile(
    r"^https://(?P<location>[a-z0-9-]+)-kfp\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)/(?P<package>[^/]+)/(?P<ref>[^/]+)$"
)


def tagged(url: str) -> re.Match[str] | None:
    """The parts of an Artifact Registry template URL that names a tag (not a sha256: version)."""
    found = TEMPLATE.match(url)
    return found if found is not None and not found["ref"].startswith("sha256:") else None
