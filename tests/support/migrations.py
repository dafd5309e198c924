"""Migrate the test database to a named state and back, for the tests of a data migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(targets: list[tuple[str, str]]) -> Apps:
    """Migrate to `targets` (app label, migration name); return the historical models there."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@contextmanager
def migrated_back_to(targets: list[tuple[str, str]]) -> Iterator[Apps]:
    """Yield the historical models at `targets`; migrate every app to its latest state afterwards."""
    try:
        yield migrate_to(targets)
    finally:
        migrate_to(MigrationExecutor(connection).loader.graph.leaf_nodes())
