"""django-prometheus's request metrics, with each labelled child looked up once per process.

`PrometheusAfterMiddleware` finds six labelled children per request (`metric.labels(view=…,
method=…, status=…)`): each lookup validates and stringifies the label values and takes the
metric's lock, and together they cost more than the increments (docs/performance.md "Third
pass"). `labels()` hands out the same child for the same values for as long as the metric
lives, so the child is kept here by (metric, label values) and the same object is incremented;
nothing in the portal removes or clears a child. The lean middleware chain builds this class
in place of django-prometheus's (`portal.infra.lean.EQUIVALENTS`).
"""

from __future__ import annotations

from typing import Any

from django_prometheus.middleware import PrometheusAfterMiddleware as StockPrometheusAfterMiddleware

#: Children kept at most; past that (a client inventing HTTP methods, say) they are looked up again.
MAX_CHILDREN = 4096

_children: dict[tuple, Any] = {}


def bound(metric: Any, **labels: str) -> Any:
    """Return `metric.labels(**labels)`, looked up once per process for each (metric, labels)."""
    key = (metric, *labels.items())
    child = _children.get(key)
    if child is None:
        child = metric.labels(**labels)
        if len(_children) >= MAX_CHILDREN:
            _children.clear()
        _children[key] = child
    return child


class PrometheusAfterMiddleware(StockPrometheusAfterMiddleware):
    """django-prometheus's after-middleware: the same metrics, children looked up once."""

    def label_metric(self, metric, request, response=None, **labels):
        return bound(metric, **labels) if labels else metric
