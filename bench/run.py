"""Run Identity Portal's benchmark suite side by side with its peers (see docs/performance.md).

    python bench/run.py            # the whole suite (make bench)
    python bench/run.py --smoke    # every benchmark for a few seconds (make bench-smoke)

Each server (Identity Portal and the three peers in bench/peers/) runs under gunicorn with one
sync worker per core on loopback, with DEBUG off and its own fresh PostgreSQL database named
``bench_…``. wrk drives the load. A project feature that has not landed yet is reported as
"not available yet" and the run goes on; a pinned interface that answers wrongly is an error
and makes the run exit non-zero.

The harness (servers, wrk, processes) is ``harness.py``, what is measured is ``suites.py``, the
table, ratios and WARNING lines are ``report.py``; this file is the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# The bench modules are siblings, not a package: found on sys.path when this file runs as a
# script, and put there when it is loaded by path (tests/bench/test_harness.py).
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from harness import ROOT, BenchError, basic, ensure_wrk, frame_package, json_from, unknown_command  # noqa: E402
from report import check_targets, inprocess_ratios, print_targets, ratios  # noqa: E402
from suites import Suite  # noqa: E402

#: What tests/bench/test_harness.py reads through this module.
__all__ = [
    "ROOT",
    "BenchError",
    "basic",
    "check_targets",
    "frame_package",
    "inprocess_ratios",
    "json_from",
    "print_targets",
    "ratios",
    "unknown_command",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every benchmark for a few seconds")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--no-redis", action="store_true", help="portal caches per process")
    parser.add_argument("--only", type=lambda s: set(s.split(",")), help="portal,dot_stock,dot_fast,apikey")
    parser.add_argument(
        "--rows",
        type=lambda s: set(s.split(",")),
        help="only these HTTP rows, e.g. key_verification_many (skips the in-process and scale runs)",
    )
    parser.add_argument(
        "--database-prefix",
        default=os.environ.get("BENCH_DATABASE_PREFIX", "bench_"),
        help="prefix of the databases (re)created, bench_…: one of your own when others bench on the "
        "same PostgreSQL server (env BENCH_DATABASE_PREFIX)",
    )
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--profile", action="store_true", help="sample one worker per benchmark with py-spy")
    args = parser.parse_args()
    ensure_wrk()
    sys.exit(Suite(args).run())


if __name__ == "__main__":
    main()
