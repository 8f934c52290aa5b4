"""Unit tests: the request and run series (observability.series) read by prometheus-client
as a Counter's and a Histogram's would be."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from graphdock.observability import metrics
from graphdock.observability.series import CounterSeries, HistogramSeries


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(name: str, **labels: str) -> float:
    for (sample, pairs), value in _samples(metrics.prometheus_text().decode()).items():
        if sample == name and all(dict(pairs).get(k) == v for k, v in labels.items()):
            return value
    return 0.0


def test_a_histogram_series_reads_as_prometheus_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    buckets = (0.005, 0.1, 1.0, 30.0)
    series = HistogramSeries("h_seconds", "doc", ("a", "b"), buckets, ours)
    reference = Histogram("h_seconds", "doc", ("a", "b"), buckets=buckets, registry=theirs)
    for value in (0.0, 0.005, 0.0051, 0.1, 0.5, 1.0, 29.9, 30.0, 31.0, 1e6):
        series.observe(("x", 2), value)
        reference.labels("x", "2").observe(value)
    series.observe(("y", 3), 0.2)
    reference.labels("y", "3").observe(0.2)
    mine = {k: v for k, v in _samples(generate_latest(ours).decode()).items() if not k[0].endswith("_created")}
    expected = {k: v for k, v in _samples(generate_latest(theirs).decode()).items() if not k[0].endswith("_created")}
    assert mine == expected


def test_a_counter_series_reads_as_prometheus_counter() -> None:
    registry = CollectorRegistry()
    series = CounterSeries("c", "doc", ("method", "status"), registry)
    series.inc(("GET", 200))
    series.inc(("GET", 200), 2)
    series.inc(("POST", 500))
    assert _samples(generate_latest(registry).decode()) == {
        ("c_total", (("method", "GET"), ("status", "200"))): 3.0,
        ("c_total", (("method", "POST"), ("status", "500"))): 1.0,
    }


def test_records_are_counted_at_once() -> None:
    route = "/series-test/{id}"
    before = _value("graphdock_http_requests_total", method="GET", route=route, status="200")
    for _ in range(5):
        metrics.http_request("GET", route, 200, 0.001)
    metrics.http_request("BREW", route, 418, 0.0)  # an unknown method counts as OTHER
    metrics.apply(["run", "series-graph", "success", 0.5])
    metrics.apply(["wait", "series-graph", 0.25])
    assert _value("graphdock_http_requests_total", method="GET", route=route, status="200") == before + 5
    assert _value("graphdock_http_requests_total", method="OTHER", route=route, status="418") == 1
    assert _value("graphdock_http_request_duration_seconds_count", method="GET", route=route) == before + 5
    assert _value("graphdock_runs_total", graph_id="series-graph", status="success") >= 1
    assert _value("graphdock_run_duration_seconds_bucket", graph_id="series-graph", status="success", le="0.5") >= 1
    assert _value("graphdock_run_queue_wait_seconds_count", graph_id="series-graph") >= 1
    document = metrics.as_json(
        {"n_pending": 0, "n_running": 0, "pending_runs_wait_time_max_secs": 0,
         "pending_runs_wait_time_med_secs": 0, "pending_unblocked_runs_wait_time_max_secs": 0},
        slots=1, busy=0,
    )
    assert {"method": "OTHER", "route": route, "status": "418", "value": 1.0} in document["api"]["http_requests_total"]
    assert any(s["graph_id"] == "series-graph" for s in document["runs"]["runs_total"])
