"""Riding through lost connections: which errors mean the connection (or the server) was
lost, and how long and how often a saver call tries again on a fresh one.

Retrying is safe because every write a plan makes is an upsert keyed by the primary key
(or a delete) and reads have no side effects: a statement that may or may not have run
before its connection died can run again. The executors retry a failed statement of an
autocommit plan alone (the ones before it committed) and a transaction whole (see
`Attempt`). Errors that are not a lost connection are never retried, nor is a cancelled
call (`CancelledError` is not an `Exception` the executors catch)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError

from .errors import ConnectionLostError

log = logging.getLogger("checkpointer")

LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
"""admin_shutdown (a backend terminated, or the server stopping), crash_shutdown,
cannot_connect_now (starting up or shutting down); every class 08 state too."""

LOST_WORDS = (
    "connection refused",
    "connection reset",
    "connection was closed",
    "connection is closed",
    "connection lost",
    "connection was lost",
    "server closed the connection",
    "terminating connection",
    "the database system is",
    "no connection to the server",
    "underlying connection is closed",
    "broken pipe",
    "consuming input failed",
    "cannot switch to state",
    "server has gone away",
    "lost connection to",
)
"""Lower-case fragments of driver messages for a lost connection or an unreachable
server (asyncpg, psycopg, libpq, the OS), for errors that carry no SQLSTATE."""


@dataclass(frozen=True)
class Retry:
    """How a saver call rides through a lost connection: up to `attempts` tries in all
    and no new try once `deadline` seconds have passed since the first failed, waiting
    between tries `initial` seconds, times `multiplier` each time up to `maximum`, each
    wait drawn at random between half and all of that (jitter, so many callers do not
    reconnect in step). The first retry goes at once: a connection killed alone (a
    pooler, an operator) is usually followed by a fresh one that works.

    The defaults ride a restart or failover of up to about 12 s: a server that is back
    within 15 s is reached by a try at most 1 s after it is."""

    attempts: int = 40
    deadline: float = 15.0
    initial: float = 0.05
    maximum: float = 1.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.deadline < 0 or self.initial < 0 or self.maximum < 0:
            raise ValueError(f"{self!r}: attempts must be >= 1, times >= 0")

    def waits(self) -> Iterator[float]:
        """The wait before each retry (at most `attempts - 1` of them)."""
        wait = self.initial
        for n in range(self.attempts - 1):
            if n == 0:
                yield 0.0
                continue
            yield random.uniform(wait / 2, wait)
            wait = min(wait * self.multiplier, self.maximum)


DEFAULT = Retry()
NEVER = Retry(attempts=1, deadline=0.0)


def policy(retry: Retry | bool | None) -> Retry:
    """The policy a saver's `retry=` argument stands for (True/None: the default)."""
    if retry is False:
        return NEVER
    if retry is True or retry is None:
        return DEFAULT
    if not isinstance(retry, Retry):
        raise TypeError(f"retry must be a Retry, True or False, not {retry!r}")
    return retry


MYSQL_ROLLED_BACK = frozenset({1213})
"""MySQL/MariaDB error numbers after which the server rolled the whole transaction back
with the connection still fine (1213: chosen as a deadlock's victim, which InnoDB's row
locks make possible between a sweep or prune and a run writing): the transaction is
tried again whole, as after a lost connection."""


def lost(error: BaseException) -> bool:
    """Whether `error` says the connection or the server went away (so a fresh
    connection may succeed), looking through the wrapped driver errors."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 6:
        seen += 1
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and (state in LOST_SQLSTATES or state.startswith("08")):
            return True
        args = getattr(current, "args", ())
        if args and isinstance(args[0], int) and args[0] in MYSQL_ROLLED_BACK:
            return True
        message = str(current).lower()
        if any(words in message for words in LOST_WORDS):
            return True
        following = getattr(current, "orig", None)
        if not isinstance(following, BaseException) or following is current:
            following = current.__cause__ or current.__context__
        current = following
    return False


def cause(error: BaseException) -> str:
    """One line naming what was lost, for the WARNING each retry logs."""
    inner = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}"


def warn(what: str, attempt: int, wait: float, error: BaseException) -> None:
    log.warning(
        "%s: connection lost (%s); retry %d on a fresh connection in %.2f s",
        what,
        cause(error),
        attempt,
        wait,
    )


def give_up(error: BaseException, tries: int, elapsed: float) -> ConnectionLostError:
    """The error a call that stops retrying raises from `error`: a `DBAPIError` (an
    `OperationalError`) whose message says the connection was lost, keeping the
    driver's error as `orig` (and `error` as `__cause__`)."""
    orig = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    statement = error.statement if isinstance(error, DBAPIError) else None
    tried = f"{tries} tries over {elapsed:.1f} s" if tries > 1 else "retry is off"
    return ConnectionLostError(
        f"the database connection was lost ({tried})",
        statement,
        orig,
    )


_AT = "_checkpointer_at"
_DONE = "_checkpointer_done"
_FINISHED = "_checkpointer_finished"


def note_step(error: BaseException, item: Any) -> None:
    """A plan driver's note on `error`: the plan item it was running (the plan has
    not been given its rows, so a retry runs it again and goes on from there)."""
    setattr(error, _AT, item)


def note_done(error: BaseException, done: list[Any], *, finished: bool) -> None:
    """A transaction's note on `error`: the steps it ran, with their rows, and whether
    the plan had finished (COMMIT failed)."""
    setattr(error, _DONE, done)
    setattr(error, _FINISHED, finished)


def same_rows(again: Any, first: Any) -> bool:
    """Whether a replayed statement read what it read the first time."""
    if again is None or first is None:
        return again is None and first is None
    return [dict(r) for r in again] == [dict(r) for r in first]


class Progress:
    """Where a plan that lost its connection stands, and whether to try again: its
    failed item (`at`), for a transaction the steps it ran with their rows (`done`),
    and the tries so far against the policy."""

    def __init__(self, policy: Retry, plan: Any, item: Any, error: Exception, what: str) -> None:
        self.policy = policy
        self.what = what
        self.atomic = bool(getattr(plan, "atomic", False))
        self.at: Any = item
        self.done: list[Any] = []
        self.finished = False
        self.last: Exception = error
        self.tries = 1
        self.start = time.monotonic()
        self._waits = policy.waits()
        self._final: Exception | None = None
        self._take(error)

    def _take(self, error: BaseException) -> None:
        at = getattr(error, _AT, None)
        done = getattr(error, _DONE, None)
        if at is not None:
            # the plan ran further: its driver noted where it broke
            self.at = at
            if done is not None:
                self.done, self.finished = done, False
        elif done is not None and getattr(error, _FINISHED, False):
            self.done, self.finished = done, True

    def next_wait(self) -> float | None:
        """The wait before the next try (logging a WARNING), or None: give up."""
        if self._final is not None:
            return None
        wait = next(self._waits, None)
        if wait is None or time.monotonic() - self.start + wait > self.policy.deadline:
            return None
        self.tries += 1
        warn(self.what, self.tries - 1, wait, self.last)
        return wait

    def failed(self, error: Exception) -> None:
        """Another try failed: go on only if it too lost its connection."""
        if not lost(error) or error is self._final:
            self._final = error
            return
        self.last = error
        self._take(error)

    def diverged(self) -> Exception:
        """A replayed transaction read other rows than the first time (another writer
        in between): it cannot go on where it was, so the lost connection's error
        stands."""
        self._final = self.error()
        return self._final

    def outcome(self) -> Any:
        """The outcome of a transaction whose COMMIT was lost, once replayed: the
        last statement's rows for the plan to finish with (see `base.finish`)."""
        from .base import Released

        if self.done and self.done[-1][0].last:
            return Released(self.done[-1][1])
        return None

    def error(self) -> Exception:
        """What the call raises when it stops: a lost connection as
        `ConnectionLostError`, any other error as it is."""
        if self._final is not None:
            return self._final
        return give_up(self.last, self.tries, time.monotonic() - self.start)
