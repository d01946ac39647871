"""Decoders: typed events from good data, `BadEvent` with a reason from bad data."""

from __future__ import annotations

import base64
import json

import pytest

from events.decoders import decode
from events.errors import BadEvent
from events.model import Message, NotJson, ObjectFinalized, ScheduleTick

STORAGE = {
    "specversion": "1.0",
    "id": "1",
    "type": "google.cloud.storage.object.v1.finalized",
    "source": "//storage.googleapis.com/projects/_/buckets/b",
}
PUBSUB = {
    "specversion": "1.0",
    "id": "m-1",
    "type": "google.cloud.pubsub.topic.v1.messagePublished",
    "source": "//pubsub.googleapis.com/projects/p/topics/t",
}


def message(data: str | None = None, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {"messageId": "m-1", "publishTime": "2026-11-26T10:00:00.5Z", **fields}
    if data is not None:
        body["data"] = data
    return {"message": body}


def b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("generation", ["1587627537231057", 1587627537231057])
def test_storage_int64_as_string_or_number(generation: object) -> None:
    event = decode(STORAGE, {"bucket": "b", "name": "a/b.csv", "generation": generation, "size": "12"})
    assert isinstance(event, ObjectFinalized)
    assert event.key == "b/a/b.csv#1587627537231057"
    assert event.size == 12


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"name": "x", "generation": "1"}, "data.bucket"),
        ({"bucket": "b", "generation": "1"}, "data.name"),
        ({"bucket": "b", "name": "x", "generation": "one"}, "data.generation"),
        ({"bucket": "b", "name": "x", "generation": True}, "data.generation"),
        ({"bucket": "b", "name": "a\nb", "generation": "1"}, "object name"),
        ({"bucket": "b", "name": "x" * 1025, "generation": "1"}, "object name"),
        (NotJson("the body is not JSON (Expecting value)"), "^the body is not JSON \\(Expecting value\\)$"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_storage_data(data: object, reason: str) -> None:
    with pytest.raises(BadEvent, match=reason):
        decode(STORAGE, data)


def test_product_message_dedupes_on_event_id_not_message_id() -> None:
    payload = {"event_id": "evt-9", "type": "survey.closed"}
    first = decode(PUBSUB, message(b64(payload), messageId="m-1"))
    retry = decode(PUBSUB, message(b64(payload), messageId="m-2"))
    assert isinstance(first, Message)
    assert isinstance(retry, Message)
    assert first.key == retry.key == "projects/p/topics/t#evt-9"


def test_message_without_event_id_dedupes_on_message_id() -> None:
    event = decode(PUBSUB, message(b64(b"\x01\x02")))
    assert isinstance(event, Message)
    assert event.key == "projects/p/topics/t#m-1"
    assert event.payload is None


def test_a_scheduler_message_on_the_schedules_topic_becomes_a_tick() -> None:
    schedules = {**PUBSUB, "source": "//pubsub.googleapis.com/projects/p/topics/kfp-trigger-schedules"}
    event = decode(schedules, message(attributes={"scheduler_job": "nightly"}))
    assert isinstance(event, ScheduleTick)
    assert event.job == "nightly"


def test_a_deployments_own_schedules_topic_is_the_one_its_ticks_come_on() -> None:
    """A deployment with another prefix has its own schedules topic (KFP_TRIGGER_SCHEDULES_TOPIC):
    its ticks are ticks there, and a message on another deployment's is not one of its ticks."""
    acme = {**PUBSUB, "source": "//pubsub.googleapis.com/projects/p/topics/acme-schedules"}
    tick = message(attributes={"scheduler_job": "nightly"})
    assert isinstance(decode(acme, tick, "acme-schedules"), ScheduleTick)
    assert not isinstance(decode(acme, tick), ScheduleTick), "not on kfp-trigger-schedules"
    theirs = {**PUBSUB, "source": "//pubsub.googleapis.com/projects/p/topics/kfp-trigger-schedules"}
    assert not isinstance(decode(theirs, tick, "acme-schedules"), ScheduleTick)


def test_a_scheduler_job_attribute_elsewhere_is_an_ordinary_message() -> None:
    """Anyone who may publish to a product topic could add the attribute: it is no tick there."""
    event = decode(PUBSUB, message(attributes={"scheduler_job": "nightly"}))
    assert not isinstance(event, ScheduleTick)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (message("AQ=="[:-1]), "base64"),  # bad padding
        (message("a b c d"), "base64"),  # whitespace
        (message("-_-_"), "base64"),  # URL-safe alphabet
        (message(None), "neither data nor attributes"),
        (message(b64(b'{"a": 1, "a": 2}')), "duplicate key"),
        (message(b64(b"x"), attributes={"k": 1}), "values must be strings"),
        ({"subscription": "s"}, "data.message"),
        (message(b64(b"x"), publishTime="yesterday"), "RFC 3339"),
    ],
)
def test_bad_pubsub_data(data: object, reason: str) -> None:
    with pytest.raises(BadEvent, match=reason):
        decode(PUBSUB, data)


def test_pubsub_source_must_be_a_topic() -> None:
    with pytest.raises(BadEvent, match="not a Pub/Sub topic"):
        decode({**PUBSUB, "source": "//pubsub.googleapis.com/"}, message(b64(b"x")))


def test_unknown_type_is_a_bad_event() -> None:
    with pytest.raises(BadEvent, match="unknown event type"):
        decode({**STORAGE, "type": "com.example.thing"}, {})


@pytest.mark.parametrize("attribute", ["id", "type", "source"])
def test_oversized_attributes_are_refused(attribute: str) -> None:
    with pytest.raises(BadEvent, match="longer than"):
        decode({**STORAGE, attribute: "x" * 65536}, {})


@pytest.mark.parametrize("wrong", [[], "text", 7, None])
def test_an_audit_entry_with_wrong_types_inside_is_ignored_not_a_crash(wrong: object) -> None:
    """Found by bench/fuzz.py: a list where the job configuration's object belongs."""
    from tests.support import cases

    (case,) = [case for case in cases() if case.file == "audit/bigquery-jobchange-done.json"]
    attributes, data = case.cloudevent()
    assert isinstance(data, dict)
    change = data["protoPayload"]["metadata"]["jobChange"]
    for path in (("job", "jobConfig", "load"), ("job", "jobConfig"), ("job", "jobStatus"), ("job",)):
        broken = json.loads(json.dumps(data))
        node = broken["protoPayload"]["metadata"]["jobChange"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = wrong
        decoded = decode(attributes, broken)
        assert decoded is not None
    assert change["after"] == "DONE"


@pytest.mark.parametrize(
    ("dataset", "table", "written"),
    [
        ("_4f1c0a", "anon9b2e", False),  # a query's hidden result table
        ("surveys", "anonymized_responses", True),  # a user's table that happens to start with "anon"
        ("surveys", "anon", True),
    ],
)
def test_only_hidden_datasets_hold_anonymous_tables(dataset: str, table: str, written: bool) -> None:
    """Issue 14: tables named `anon…` in a user's dataset were silently ignored."""
    from events.model import Ignored, TableWritten
    from tests.support import cases

    (case,) = [case for case in cases() if case.file == "audit/bigquery-anonymous.json"]
    attributes, data = case.cloudevent()
    assert isinstance(data, dict)
    job = data["protoPayload"]["serviceData"]["jobCompletedEvent"]["job"]
    job["jobConfiguration"]["query"]["destinationTable"].update(datasetId=dataset, tableId=table)
    decoded = decode(attributes, data)
    if written:
        assert isinstance(decoded, TableWritten)
        assert (decoded.dataset, decoded.table) == (dataset, table)
    else:
        assert isinstance(decoded, Ignored)
        assert "anonymous" in decoded.reason


@pytest.mark.parametrize(
    ("file", "table", "partition", "rows"),
    [
        # the legacy format (AuditData): a real query job (google-cloudevents' sample), our loads
        ("audit/LogEntryData-bigqueryjobcompleted.json", "sample-table", "", 10),
        ("audit/bigquery-load-legacy.json", "responses_tenant_a", "", None),  # a load: bytes only
        ("audit/bigquery-load-legacy-partition-empty.json", "responses", "20261126", 0),  # 0 bytes
        # the new format (BigQueryAuditMetadata)
        ("audit/bigquery-jobchange-done.json", "responses_tenant_b", "", None),
        ("audit/bigquery-jobchange-query-partition.json", "responses", "20261127", 42),
        ("audit/bigquery-tabledatachange.json", "responses_tenant_b", "", 1200),
    ],
)
def test_a_bigquery_write_carries_its_partition_and_the_rows_it_wrote(
    file: str, table: str, partition: str, rows: int | None
) -> None:
    from events.model import TableWritten
    from tests.support import cases

    (case,) = [case for case in cases() if case.file == file]
    decoded = decode(*case.cloudevent())
    assert isinstance(decoded, TableWritten)
    assert (decoded.table, decoded.partition, decoded.rows) == (table, partition, rows)
    assert decoded.fields()["table.partition"] == partition
    assert decoded.fields().get("job.rows") == rows


@pytest.mark.parametrize("decorator", ["", "2026-11-26", "x" * 65, "2026\u00b9"])
def test_a_destination_whose_partition_decorator_is_not_one_is_ignored(decorator: str) -> None:
    from events.model import Ignored
    from tests.support import cases

    (case,) = [case for case in cases() if case.file == "audit/bigquery-jobchange-query-partition.json"]
    attributes, data = case.cloudevent()
    assert isinstance(data, dict)
    config = data["protoPayload"]["metadata"]["jobChange"]["job"]["jobConfig"]["queryConfig"]
    config["destinationTable"] = f"projects/acme-analytics/datasets/surveys/tables/responses${decorator}"
    decoded = decode(attributes, data)
    assert isinstance(decoded, Ignored)
    assert "partition decorator" in decoded.reason
