"""`last_used_at` of every credential kind, written in batches: one UPDATE per kind per flush, per process.

A credential's first use in a minute used to cost its own UPDATE (and its own commit) on the
request: nothing on a server serving one hot credential, but on one serving thousands
presented in turn, nearly one write per request (docs/performance.md, "Third pass"). Now the
kind's hot path calls `Batch.add(pk, …)` (a dict insert under a lock, no I/O) and the process
writes every row it holds with **one** statement per kind:

- at the end of a request (`request_finished`, after the response has been sent), at most
  every `PORTAL_LAST_USED_FLUSH_SECONDS` (5 s; 0 writes at the end of every request that
  recorded a use);
- when the process has had no request for a while: a timer flushes what is still held
  `2 × PORTAL_LAST_USED_FLUSH_SECONDS` after the first use it holds (a busy process has
  flushed before then, so the timer finds nothing and opens no connection);
- when the process exits (gunicorn's workers exit through SystemExit; `atexit`);
- at once, outside a request (a command, a shell): `add` writes before it returns.

So `last_used_at` is in the database within `2 × PORTAL_LAST_USED_FLUSH_SECONDS` of a use
(far inside its documented one-minute resolution); a process that is killed loses at most
that much, and the next use after the kind's throttle writes again. A failed write is logged
and dropped, never raised: last use is bookkeeping, not a reason to fail anything.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.signals import request_finished
from django.db import DEFAULT_DB_ALIAS, connections

from portal.infra.idle import IdleFlush
from portal.infra.request_context import current_request_context

logger = logging.getLogger(__name__)

#: Rows per statement (SQLite's bound-parameter limit is the tightest: 999 on older builds).
_CHUNK = {"postgresql": 5000}
_CHUNK_DEFAULT = 150

_lock = threading.Lock()
_batches: list[Batch] = []
_state = {"last_flush": 0.0}


def flush_seconds() -> float:
    """Return `PORTAL_LAST_USED_FLUSH_SECONDS` (how often, at most, a process writes what it holds)."""
    return float(getattr(settings, "PORTAL_LAST_USED_FLUSH_SECONDS", 5.0))


class Batch:
    """The last uses of one kind's rows held by this process, and how to write them.

    `write(rows)` receives `{pk: values}` (the values `add` was given for that row) and writes
    them; it runs outside the lock, in the request's thread after the response, in the
    timer's thread, or at exit.
    """

    def __init__(self, name: str, write: Callable[[dict[Any, tuple]], None]) -> None:
        self.name = name
        self.write = write
        self.pending: dict[Any, tuple] = {}
        _batches.append(self)

    def add(self, pk: Any, *values: Any) -> None:
        """Record a use of row `pk` with `values`; the first use since the last flush is the one written."""
        if current_request_context() is None:
            _write(self, {pk: values})  # a command or a shell: nothing would flush it later
            return
        with _lock:
            if pk in self.pending:
                return
            self.pending[pk] = values
            _idle.arm()

    def __len__(self) -> int:
        return len(self.pending)


_of_model: dict[tuple, Batch] = {}


def of_model(model, *field_names: str) -> Batch:
    """Return the batch writing `field_names` of `model`'s rows (`add(pk, *values)`, one value per field)."""
    key = (model, field_names)
    batch = _of_model.get(key)
    if batch is None:
        with _lock:
            batch = _of_model.get(key)
            if batch is None:
                batch = _of_model[key] = Batch(
                    str(model._meta.verbose_name_plural), lambda rows: update_rows(model, field_names, rows)
                )
    return batch


def _write(batch: Batch, rows: dict[Any, tuple]) -> None:
    try:
        batch.write(rows)
    except Exception:  # noqa: BLE001  bookkeeping never fails a request (or a worker's exit)
        logger.warning("Could not record the last use of %d %s", len(rows), batch.name, exc_info=True)


def flush() -> int:
    """Write every row this process holds (one statement per kind); return how many rows were written."""
    with _lock:
        taken = [(batch, batch.pending) for batch in _batches if batch.pending]
        for batch, _rows in taken:
            batch.pending = {}
        _state["last_flush"] = time.monotonic()
        _idle.flushed()
    for batch, rows in taken:
        _write(batch, rows)
    return sum(len(rows) for _batch, rows in taken)


def forget() -> None:
    """Drop what this process holds without writing it (tests: those rows went with the test's data)."""
    with _lock:
        for batch in _batches:
            batch.pending = {}


def _flush_if_due(**_kwargs: Any) -> None:
    if any(batch.pending for batch in _batches) and (
        time.monotonic() - _state["last_flush"] >= flush_seconds()
    ):
        flush()


#: A process that goes idle writes what it holds from a timer (portal.infra.idle), in that
#: thread's own database connections, closed after.
_idle = IdleFlush(
    "last-used-flush",
    lock=_lock,
    interval=flush_seconds,
    holding=lambda: any(batch.pending for batch in _batches),
    flush=flush,
    after=connections.close_all,
)


def _flush_at_exit() -> None:
    if any(batch.pending for batch in _batches):
        flush()


request_finished.connect(_flush_if_due, dispatch_uid="credentials.last_used.flush")
atexit.register(_flush_at_exit)


# --- the statement --------------------------------------------------------------------------


def update_rows(model, field_names: Iterable[str], rows: dict[Any, tuple]) -> None:
    """Set `field_names` of each row `pk -> values` (None keeps the stored value), one statement per chunk.

    PostgreSQL: `UPDATE … FROM unnest(…)`, one statement for the whole flush. Others (SQLite):
    `CASE pk WHEN …` per field. Columns and casts come from the model's metadata; every value
    is a bound parameter, adapted by the field as the ORM would.
    """
    if not rows:
        return
    connection = connections[DEFAULT_DB_ALIAS]  # this thread's, looked up once, not per value
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    prepared = [
        (
            meta.pk.get_db_prep_value(key, connection),
            *(field.get_db_prep_value(v, connection) for field, v in zip(fields, values, strict=True)),
        )
        for key, values in rows.items()
    ]
    chunk = _CHUNK.get(connection.vendor, _CHUNK_DEFAULT)
    with connection.cursor() as cursor:
        for start in range(0, len(prepared), chunk):
            part = prepared[start : start + chunk]
            if connection.vendor == "postgresql":
                statement = _values_update(connection, table, pk, meta.pk, fields, part)
            else:
                statement = _case_update(connection, table, pk, fields, part)
            if statement is not None:
                cursor.execute(*statement)


def _values_update(connection, table: str, pk: str, pk_field, fields, part) -> tuple[str, list]:
    """PostgreSQL: one array per column, joined with `unnest`: three parameters, whatever the rows.

    (A `VALUES` list of one cast placeholder per value cost the client more than the rows'
    writes cost the server: docs/performance.md, "Fourth pass".)
    """
    quote = connection.ops.quote_name
    types = [pk_field.db_type(connection), *(field.db_type(connection) for field in fields)]
    arrays = ", ".join(f"CAST(%s AS {db_type}[])" for db_type in types)
    names = ["pk", *(f"v{i}" for i in range(len(fields)))]
    assignments = ", ".join(
        f"{quote(field.column)} = COALESCE(v.v{i}, t.{quote(field.column)})" for i, field in enumerate(fields)
    )
    sql = (
        f"UPDATE {table} AS t SET {assignments}"  # noqa: S608  identifiers from the model's metadata
        f" FROM unnest({arrays}) AS v({', '.join(names)}) WHERE t.{pk} = v.pk"
    )
    return sql, [list(column) for column in zip(*part, strict=True)]


def _case_update(connection, table: str, pk: str, fields, part) -> tuple[str, list] | None:
    quote = connection.ops.quote_name
    assignments, params = [], []
    for i, field in enumerate(fields):
        column = quote(field.column)
        whens = [(values[0], values[i + 1]) for values in part if values[i + 1] is not None]
        if not whens:
            continue
        assignments.append(
            f"{column} = CASE {pk} {' '.join(['WHEN %s THEN %s'] * len(whens))} ELSE {column} END"
        )
        params += [value for when in whens for value in when]
    if not assignments:
        return None
    sql = (
        f"UPDATE {table} SET {', '.join(assignments)}"  # noqa: S608  identifiers from the model's metadata
        f" WHERE {pk} IN ({', '.join(['%s'] * len(part))})"
    )
    return sql, params + [values[0] for values in part]
