"""Prometheus metrics of this process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "zt_http_requests_total",
    "HTTP requests by route and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "zt_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
JOBS_PROCESSED = Counter(
    "zt_jobs_processed_total", "Outbox jobs by topic and outcome", ["topic", "outcome"], registry=REGISTRY
)
JOBS_PENDING = Gauge("zt_jobs_pending", "Outbox jobs waiting, as last seen by this process", registry=REGISTRY)
LOGIN_FAILURES = Counter("zt_login_failures_total", "Failed console sign-ins", registry=REGISTRY)
