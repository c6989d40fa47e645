"""Running a transaction again when it lost a lock conflict (a deadlock or serialization failure).

Every statement of textfleet's batch transactions is a conditional update, so a transaction the
database rolled back whole may simply run again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy.exc import OperationalError

from shared.constants import CONFLICT_TRIES

__all__ = ["CONFLICT_TRIES", "is_conflict", "retry_conflicts"]

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

#: PostgreSQL's SQLSTATEs for a deadlock and a serialization failure: the transaction rolled back
#: whole and may simply run again (every statement in it is a conditional update).
_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def is_conflict(exc: OperationalError) -> bool:
    """A rolled-back transaction worth running again: a PostgreSQL deadlock or serialization failure,
    or SQLite's busy database."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in _CONFLICT_SQLSTATES or "database is locked" in str(exc.orig)


def retry_conflicts(body: Callable[[], _T]) -> _T:
    """Run a transaction body, again (after a short jittered pause) when it lost a lock conflict.

    Batches lock their rows in job-id order, but the sweeper's multi-row statements lock in scan
    order, so a deadlock between the two is possible; PostgreSQL then aborts one of them. Without
    the retry its jobs would stay `running` under a live worker until their time limit."""
    for attempt in range(1, CONFLICT_TRIES + 1):
        try:
            return body()
        except OperationalError as exc:
            if attempt == CONFLICT_TRIES or not is_conflict(exc):
                raise
            log.warning("store.conflict_retry", attempt=attempt, error=type(exc.orig).__name__)
            time.sleep(random.uniform(0.005, 0.02) * 2**attempt)
    raise AssertionError("unreachable")
