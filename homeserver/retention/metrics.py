"""Prometheus metrics of the purge job, in the server's registry (homeserver/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class PurgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._events = Counter(
            "homeserver_retention_purged_events",
            "Events whose content the purge job removed, by why (retention, redaction)",
            ["reason"],
            registry=registry,
        )
        self._media = Counter(
            "homeserver_retention_deleted_media",
            "Local media the purge job deleted with the last event naming them",
            registry=registry,
        )
        self._last_run = Gauge(
            "homeserver_retention_last_run_duration_seconds",
            "How long the last run of the purge job took",
            registry=registry,
        )
        self._last_run_end = Gauge(
            "homeserver_retention_last_run_end_timestamp_seconds",
            "When the last run of the purge job ended",
            registry=registry,
        )

    def purged(self, reason: str, events: int, media: int) -> None:
        self._events.labels(reason).inc(events)
        self._media.inc(media)

    def run_ended(self, seconds: float, at: float) -> None:
        self._last_run.set(seconds)
        self._last_run_end.set(at)
