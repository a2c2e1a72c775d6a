"""Prometheus metrics, in a registry per server so tests can run several."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _PoolCollector(Collector):
    """Reads the database pool's size and idle connections at scrape time."""

    def __init__(self, sizes: Callable[[], tuple[int, int, int]]) -> None:
        self._sizes = sizes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size, idle, max_size = self._sizes()
        yield GaugeMetricFamily("homeserver_db_pool_connections", "Open connections", size)
        yield GaugeMetricFamily(
            "homeserver_db_pool_connections_in_use", "Connections in use", size - idle
        )
        yield GaugeMetricFamily(
            "homeserver_db_pool_connections_max", "Most connections allowed", max_size
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "homeserver_http_requests",
            "HTTP requests handled",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "homeserver_http_request_duration_seconds",
            "Time to handle an HTTP request",
            ["method", "endpoint"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self._requests.labels(method, endpoint, str(status)).inc()
        self._latency.labels(method, endpoint).observe(seconds)

    def watch_pool(self, sizes: Callable[[], tuple[int, int, int]]) -> None:
        self.registry.register(_PoolCollector(sizes))

    def render(self) -> bytes:
        return generate_latest(self.registry)
