"""Prometheus metrics of the pushes to application services, per appservice,
in the server's registry (homeserver/metrics.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _QueueCollector(Collector):
    """Reads each appservice's queue length at scrape time."""

    def __init__(self, lengths: Callable[[], Mapping[str, int]]) -> None:
        self._lengths = lengths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "homeserver_appservice_queue_events",
            "Events of the stream an appservice has not acknowledged yet (at most)",
            labels=["appservice"],
        )
        for appservice_id, length in sorted(self._lengths().items()):
            gauge.add_metric([appservice_id], length)
        yield gauge


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._events = Counter(
            "homeserver_appservice_events_sent",
            "Events an appservice acknowledged",
            ["appservice"],
            registry=registry,
        )
        self._transactions = Counter(
            "homeserver_appservice_transactions_sent",
            "Transactions an appservice acknowledged",
            ["appservice"],
            registry=registry,
        )
        self._failures = Counter(
            "homeserver_appservice_transaction_failures",
            "Attempts to send a transaction that got no 2xx",
            ["appservice"],
            registry=registry,
        )
        self._latency = Histogram(
            "homeserver_appservice_delivery_latency_seconds",
            "From an event's commit to the appservice's acknowledgement of it",
            ["appservice"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def watch_queues(self, lengths: Callable[[], Mapping[str, int]]) -> None:
        self._registry.register(_QueueCollector(lengths))

    def sent(self, appservice_id: str, events: int, latencies: Iterable[float]) -> None:
        self._transactions.labels(appservice_id).inc()
        self._events.labels(appservice_id).inc(events)
        for seconds in latencies:
            self._latency.labels(appservice_id).observe(seconds)

    def failed(self, appservice_id: str) -> None:
        self._failures.labels(appservice_id).inc()
