"""Unit tests: request and run records are buffered and applied in bulk (metrics.flush)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from graphdock.observability import metrics


def _value(name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.prometheus_text().decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_buffered_records_are_counted_at_scrape() -> None:
    route = "/buffer-test/{id}"
    before = _value("graphdock_http_requests_total", method="GET", route=route, status="200")
    for _ in range(5):
        metrics.http_request("GET", route, 200, 0.001)
    metrics.apply(["run", "buffer-graph", "success", 0.5])
    metrics.apply(["wait", "buffer-graph", 0.25])
    assert _value("graphdock_http_requests_total", method="GET", route=route, status="200") == before + 5
    assert _value("graphdock_runs_total", graph_id="buffer-graph", status="success") >= 1
    assert _value("graphdock_run_queue_wait_seconds_count", graph_id="buffer-graph") >= 1


def test_buffer_is_bounded_without_scrapes() -> None:
    metrics.flush()
    for _ in range(metrics._FLUSH_AT * 3):
        metrics.http_request("BREW", "/buffer-bound", 418, 0.0)  # an unknown method counts as OTHER
    assert len(metrics._pending) < metrics._FLUSH_AT
    assert _value("graphdock_http_requests_total", method="OTHER", route="/buffer-bound", status="418") == 3 * metrics._FLUSH_AT
