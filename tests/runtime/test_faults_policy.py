"""The retry policy on its own (no database): what counts as a lost connection, the
waits it makes, and the error a call that stops retrying raises."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from checkpointer import ConnectionLostError, Retry
from checkpointer.retry import DEFAULT, NEVER, give_up, lost, policy


class _Driver(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "error",
    [
        _Driver("terminating connection due to administrator command", "57P01"),
        _Driver("the database system is shutting down", "57P03"),
        _Driver("the database system is starting up"),
        _Driver("connection failure", "08006"),
        ConnectionRefusedError(111, "Connect call failed"),
        OperationalError("SELECT 1", {}, _Driver("server closed the connection unexpectedly")),
        DBAPIError("SELECT 1", {}, _Driver("x"), connection_invalidated=True),
        _Driver("cannot switch to state 12; another operation (2) is in progress"),
    ],
)
def test_a_lost_connection_is_recognised(error: BaseException) -> None:
    assert lost(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, _Driver("duplicate key value", "23505")),
        _Driver("relation does not exist", "42P01"),
        ValueError("metadata too deep"),
        _Driver('connection failed: FATAL:  password authentication failed for user "x"', "28P01"),
        asyncio.CancelledError(),
        DBAPIError("SELECT", {}, _Driver("QueuePool limit reached, connection timed out")),
    ],
)
def test_other_errors_are_not_retried(error: BaseException) -> None:
    assert not lost(error)


def test_waits_start_at_once_grow_and_stay_bounded() -> None:
    waits = list(Retry(attempts=10, initial=0.1, maximum=0.5).waits())
    assert len(waits) == 9
    assert waits[0] == 0.0
    assert all(0.05 <= w <= 0.5 for w in waits[1:])
    assert max(waits[-3:]) > 0.2  # grown towards the maximum
    assert list(NEVER.waits()) == []
    assert sum(DEFAULT.maximum for _ in range(DEFAULT.attempts)) > DEFAULT.deadline


def test_policy_arguments() -> None:
    assert policy(True) is DEFAULT
    assert policy(False) is NEVER
    custom = Retry(attempts=3, deadline=1.0)
    assert policy(custom) is custom
    with pytest.raises(TypeError):
        policy(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempts"):
        Retry(attempts=0)


def test_giving_up_says_the_connection_was_lost() -> None:
    driver = _Driver("the database system is shutting down", "57P03")
    error = give_up(driver, 7, 15.2)
    assert isinstance(error, ConnectionLostError)
    assert isinstance(error, DBAPIError)
    assert error.orig is driver
    assert error.connection_invalidated
    assert "the database connection was lost (7 tries over 15.2 s)" in str(error)
    assert "shutting down" in str(error)
