"""Work that may wait until the response has been sent: `defer(job)`.

For bookkeeping a request must neither wait for nor fail over (a usage outcome that needs a
query, say). Inside a request the job runs when the request finishes (`request_finished`,
after the server has written the response), with the request's context (client IP, path)
current again; outside a request it runs at once. A job that raises is logged and dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.core.signals import request_finished

from portal.infra.request_context import RequestContext, current_request_context, request_context_restored

log = logging.getLogger(__name__)

_pending = threading.local()


def defer(job: Callable[[], Any]) -> None:
    """Run `job` after the response of the request being served (at once outside a request)."""
    context = current_request_context()
    if context is None:
        _run(job, None)
        return
    jobs = getattr(_pending, "jobs", None)
    if jobs is None:
        jobs = _pending.jobs = []
    jobs.append((job, context))


def _run(job: Callable[[], Any], context: RequestContext | None) -> None:
    try:
        if context is None:
            job()
        else:
            with request_context_restored(context):
                job()
    except Exception:  # noqa: BLE001  bookkeeping never fails a request
        log.warning("Deferred work failed; dropped", exc_info=True)


def _run_pending(**_kwargs: Any) -> None:
    jobs = getattr(_pending, "jobs", None)
    if jobs:
        _pending.jobs = []
        for job, context in jobs:
            _run(job, context)


request_finished.connect(_run_pending, dispatch_uid="portal.infra.after_response.run_pending")
