"""Counters and histograms for the request path: one dict lookup and an addition per
update, read by prometheus-client when ``/metrics`` is scraped.

A labelled ``prometheus_client`` metric takes a lock and walks its buckets on every
update; for the per-request and per-run series that was a few microseconds each time.
These keep their values in plain dicts keyed by the label values and are exposed as a
custom collector (``CounterMetricFamily`` / ``HistogramMetricFamily``), so the text
and JSON a scraper reads are the same as a ``Counter``'s or a ``Histogram``'s. They are
updated from the event loop's thread only (the requests, the executor, the records run
processes send), which is also where a scrape reads them.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Iterable, Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString


class CounterSeries(Collector):
    """A counter per label set (``<name>_total``)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.values: dict[tuple[Any, ...], float] = {}
        registry.register(self)

    def inc(self, labels: tuple[Any, ...], amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric([str(label) for label in labels], value)
        yield family

    def describe(self) -> Iterable[Metric]:
        return ()


class HistogramSeries(Collector):
    """A histogram per label set (``_bucket``, ``_count``, ``_sum``), with the upper bounds
    ``buckets`` (and ``+Inf``)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.bounds = tuple(float(bound) for bound in buckets)
        self._les = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        # label values -> observations per bucket (not cumulative; the last one past every
        # bound), then their sum
        self.values: dict[tuple[Any, ...], list[float]] = {}
        registry.register(self)

    def observe(self, labels: tuple[Any, ...], value: float) -> None:
        entry = self.values.get(labels)
        if entry is None:
            entry = self.values[labels] = [0] * (len(self.bounds) + 1) + [0.0]
        entry[bisect_left(self.bounds, value)] += 1  # a bucket counts the values <= its bound
        entry[-1] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, entry in list(self.values.items()):
            cumulative, buckets = 0.0, []
            for le, n in zip(self._les, entry):
                cumulative += n
                buckets.append((le, cumulative))
            family.add_metric([str(label) for label in labels], buckets, entry[-1])
        yield family

    def describe(self) -> Iterable[Metric]:
        return ()
