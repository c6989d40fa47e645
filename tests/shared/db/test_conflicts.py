"""A batch transaction that loses a lock conflict runs again (shared/db/conflicts.py `retry_conflicts`).

The real thing first: two PostgreSQL transactions that lock two job rows in opposite orders, so the
server aborts one with a deadlock; `is_conflict` must recognise that error. Then the retry rule on
bodies that fail as PostgreSQL and SQLite do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from shared.db.conflicts import CONFLICT_TRIES, is_conflict, retry_conflicts
from shared.db.migrate import upgrade
from tests.utils.factories import insert_job
from tests.utils.services import postgres_database

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """Deadlocks are PostgreSQL's (SQLite serialises writers): this test needs the real server."""
    with postgres_database() as url:
        upgrade(url)
        yield url


def test_a_real_postgresql_deadlock_is_a_conflict(postgresql_url: str) -> None:
    database_url = postgresql_url
    first, second = insert_job(database_url), insert_job(database_url)
    engine = create_engine(database_url)
    both_locked = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []

    def transaction(order: tuple[str, str]) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE jobs SET priority = 1 WHERE id = :id"), {"id": order[0]})
                both_locked.wait()
                conn.execute(text("UPDATE jobs SET priority = 2 WHERE id = :id"), {"id": order[1]})
        except OperationalError as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=transaction, args=((first, second),)),
        threading.Thread(target=transaction, args=((second, first),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    engine.dispose()
    assert len(errors) == 1, "PostgreSQL aborts exactly one of two deadlocked transactions"
    assert isinstance(errors[0], OperationalError)
    assert is_conflict(errors[0])


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _failure(message: str, sqlstate: str | None = None) -> OperationalError:
    return OperationalError("UPDATE jobs ...", {}, _DriverError(message, sqlstate))


@pytest.mark.parametrize(
    "failure",
    [
        _failure("deadlock detected", "40P01"),
        _failure("could not serialize", "40001"),
        _failure("database is locked"),
    ],
)
def test_a_conflict_is_retried_until_the_body_succeeds(failure: OperationalError) -> None:
    calls: list[int] = []

    def body() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise failure
        return "committed"

    assert retry_conflicts(body) == "committed"
    assert len(calls) == 3


def test_other_errors_and_endless_conflicts_are_raised() -> None:
    calls: list[Any] = []

    def broken() -> None:
        calls.append(1)
        raise _failure("connection refused", "08001")

    with pytest.raises(OperationalError):
        retry_conflicts(broken)
    assert len(calls) == 1

    def deadlocked() -> None:
        calls.append(2)
        raise _failure("deadlock detected", "40P01")

    with pytest.raises(OperationalError):
        retry_conflicts(deadlocked)
    assert calls.count(2) == CONFLICT_TRIES
