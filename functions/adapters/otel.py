"""`Telemetry` with OpenTelemetry: the instruments, the spans, and where they are exported.

`KFP_TRIGGER_TELEMETRY` picks the exporters (bootstrap builds this only when it is not `off`,
so the SDK is imported on the first request of a process that asked for it, never at import):

    gcp     Cloud Trace and Cloud Monitoring (what the deploy plan sets), for the project of
            GOOGLE_CLOUD_PROJECT (or the metadata server's)
    otlp    OTLP over HTTP, to OTEL_EXPORTER_OTLP_ENDPOINT (a local collector, Jaeger, …); the
            exporter is a laptop tool: `pip install -e '.[dev]'`
    memory  kept in this process (`spans`, `reader`): tests and benchmarks read them

The providers belong to this object, not to the process-wide OpenTelemetry globals, so a test
can build one per case and a library's own instrumentation is left alone.

Spans: each request is a SERVER span named after its target, child of the request's W3C
`traceparent` or its `X-Cloud-Trace-Context`; `span` opens children (an event, a submit, a
result's publishing) under a given traceparent. Spans are flushed when each request ends
(`request`), so none wait for CPU an idle function instance does not get; metrics are exported
every minute by a background reader (Cloud Monitoring accepts one point per series per five
seconds) and when the process exits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.context import Context

Mode = Literal["gcp", "otlp", "memory"]
SCOPE = "kfp_trigger"
EXPORT_INTERVAL_MS = 60_000
FLUSH_TIMEOUT_MS = 2_000  # a request waits at most this for its spans to leave
# Histogram buckets, in seconds: event → submit is seconds (minutes when queued or batched);
# a run takes minutes to hours.
TO_SUBMIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
DURATION_BUCKETS = (10, 30, 60, 300, 600, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 86400)

_W3C = TraceContextTextMapPropagator()


class OtelTelemetry:
    """The service's instruments and spans over one tracer provider and one meter provider."""

    recording = True

    def __init__(self, tracing: TracerProvider, meters: MeterProvider, *, flush: bool) -> None:
        from opentelemetry.propagators.cloud_trace_propagator import CloudTraceFormatPropagator
        from opentelemetry.propagators.composite import CompositePropagator

        self.tracing, self.meters, self._flush = tracing, meters, flush
        # The W3C header wins over Google's when a request has both (the later one overrides).
        self._incoming = CompositePropagator([CloudTraceFormatPropagator(), _W3C])
        self._tracer = tracing.get_tracer(SCOPE)
        meter = meters.get_meter(SCOPE)
        self._events = meter.create_counter(
            "kfp_trigger.events", unit="{event}", description="inbound events by source, route and outcome"
        )
        self._runs = meter.create_counter(
            "kfp_trigger.runs", unit="{run}", description="runs reaching a state, by route, backend and state"
        )
        self._to_submit = meter.create_histogram(
            "kfp_trigger.event_to_submit",
            unit="s",
            description="from a run's event arriving to its submission (queue and window waits included)",
            explicit_bucket_boundaries_advisory=TO_SUBMIT_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "kfp_trigger.run.duration",
            unit="s",
            description="from a run's submission to its end, by route, backend and state",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._queued = meter.create_gauge(
            "kfp_trigger.queue.depth", unit="{run}", description="runs waiting in the queue"
        )
        self._open_joins = meter.create_gauge(
            "kfp_trigger.joins.open", unit="{window}", description="join windows waiting for parts"
        )

    @contextmanager
    def request(self, target: str, headers: Mapping[str, str]) -> Iterator[object]:
        parent = self._incoming.extract({key.lower(): value for key, value in headers.items()})
        try:
            with self._tracer.start_as_current_span(
                target, context=parent, kind=trace.SpanKind.SERVER, attributes={"faas.trigger": "http"}
            ) as span:
                yield span
        finally:
            if self._flush:
                self.tracing.force_flush(FLUSH_TIMEOUT_MS)

    @contextmanager
    def span(self, name: str, parent: str = "", **attributes: str) -> Iterator[object]:
        context = _context_of(parent) if parent else None
        with self._tracer.start_as_current_span(name, context=context, attributes=attributes) as span:
            yield span

    def current(self) -> str:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier.get("traceparent", "")

    def event(self, source: str, route: str, outcome: str) -> None:
        self._events.add(1, {"source": source, "route": route, "outcome": outcome})

    def run(self, route: str, backend: str, state: str, seconds: float | None = None) -> None:
        where = {"route": route, "backend": backend}
        self._runs.add(1, where | {"state": state})
        if seconds is None:
            return
        if state == "SUBMITTED":
            self._to_submit.record(max(seconds, 0.0), where)
        else:
            self._duration.record(max(seconds, 0.0), where | {"state": state})

    def gauges(self, queued: int, open_joins: int) -> None:
        self._queued.set(queued)
        self._open_joins.set(open_joins)


def _context_of(traceparent: str) -> Context | None:
    """The context a traceparent names; None (the current one) if it is not a valid one."""
    context = _W3C.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


class MemoryTelemetry(OtelTelemetry):
    """Everything kept in the process: `spans.get_finished_spans()`, `reader.get_metrics_data()`."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        tracing = TracerProvider(resource=_resource())
        tracing.add_span_processor(SimpleSpanProcessor(self.spans))
        super().__init__(tracing, MeterProvider([self.reader], resource=_resource()), flush=False)

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every metric's data points: name → [(attributes, point)], from a fresh collection."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return found


def telemetry_for(mode: Mode, project: str = "") -> OtelTelemetry:
    """The telemetry of `mode` (see the module's docstring).

    Raises:
        ImportError: the exporters of `mode` are not installed (the message says how to).
    """
    if mode == "memory":
        return MemoryTelemetry()
    spans, metrics = _gcp_exporters(project) if mode == "gcp" else _otlp_exporters()
    resource = _resource(detect_gcp=mode == "gcp")
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(BatchSpanProcessor(spans))
    reader: MetricReader = PeriodicExportingMetricReader(metrics, export_interval_millis=EXPORT_INTERVAL_MS)
    return OtelTelemetry(tracing, MeterProvider([reader], resource=resource), flush=True)


def _resource(*, detect_gcp: bool = False) -> Resource:
    resource = Resource.create({"service.name": "kfp-trigger"})
    if detect_gcp:  # Cloud Run / Cloud Functions: the monitored resource the points belong to
        from opentelemetry.resourcedetector.gcp_resource_detector import GoogleCloudResourceDetector

        resource = resource.merge(GoogleCloudResourceDetector(raise_on_error=False).detect())
    return resource


def _gcp_exporters(project: str) -> tuple[SpanExporter, Any]:
    from opentelemetry.exporter.cloud_monitoring import CloudMonitoringMetricsExporter
    from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

    # Every instance writes series of its own (Cloud Monitoring refuses two writers of one series).
    metrics = CloudMonitoringMetricsExporter(project_id=project or None, add_unique_identifier=True)
    spans = CloudTraceSpanExporter(project_id=project or None)  # type: ignore[no-untyped-call]
    return spans, metrics


def _otlp_exporters() -> tuple[SpanExporter, Any]:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ImportError(
            "KFP_TRIGGER_TELEMETRY=otlp needs opentelemetry-exporter-otlp-proto-http, a laptop tool: "
            "pip install -e '.[dev]'"
        ) from exc
    return OTLPSpanExporter(), OTLPMetricExporter()
