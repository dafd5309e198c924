"""The verification metrics' pre-bound recorder adds exactly what Counter.inc and Histogram.observe add."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from portal.infra.metrics import _LATENCY_BUCKETS, _bound_recorder

#: Latencies on, just above and just below bucket bounds, and past the last one.
LATENCIES = [0, 1e-7, 0.001, 0.0010001, 0.0024999, 0.0025, 0.003, 0.01, 0.7, 1.0, 2.5, 5.0, 5.0001, 60, 1e9]


def _metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("verifications", "v", ["credential_type", "outcome"], registry=registry)
    histogram = Histogram("seconds", "s", ["credential_type"], buckets=_LATENCY_BUCKETS, registry=registry)
    return registry, counter.labels("api_key", "valid"), histogram.labels("api_key")


def _samples(registry: CollectorRegistry) -> list[tuple]:
    return sorted(
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    )


def test_the_bound_recorder_adds_what_inc_and_observe_add():
    public, counter, histogram = _metrics()
    bound, bound_counter, bound_histogram = _metrics()
    record = _bound_recorder(bound_counter, bound_histogram)
    for seconds in LATENCIES:
        counter.inc()
        histogram.observe(seconds)
        record(seconds)
    assert _samples(bound) == _samples(public)
    assert (
        "verifications_total",
        (("credential_type", "api_key"), ("outcome", "valid")),
        len(LATENCIES),
    ) in (_samples(bound))


def test_an_unknown_layout_falls_back_to_the_public_calls():
    calls = []

    class Child:
        def inc(self):
            calls.append("inc")

        def observe(self, seconds):
            calls.append(("observe", seconds))

    _bound_recorder(Child(), Child())(0.5)
    assert calls == ["inc", ("observe", 0.5)]
