"""The operations of the `checkpointer` command, on click and rich: a thin shell over
`SQLAlchemySaver` (no SQL here). Every command takes `--url` (or
CHECKPOINTER_DATABASE_URL), `--schema` (or CHECKPOINTER_SCHEMA) and `--json`.

Output: human tables on stdout by default; with `--json`, one JSON document per command
in the shape documented on each (the `as_dict()` of the result types). A progress bar
or spinner goes to stderr, and only when stderr is a terminal and `--json` is off.
Destructive commands ask for confirmation on a terminal; elsewhere they need `--yes`.
Exit status: 0 done, 1 failed (one line on stderr, never a traceback), 2 usage.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .cli import run_migrations_cli
from .errors import CheckpointerError
from .ids import id_time
from .migrations import SCHEMA_ENV, URL_ENV
from .sync import SQLAlchemySaver

F = TypeVar("F", bound=Callable[..., Any])

CONNECT_TIMEOUT = 5
"""Seconds to wait for a PostgreSQL connection: a wrong host fails fast, no retries."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Duration(click.ParamType[timedelta]):
    """`30d`, `12h`, `90m`, `45s`, `2w`."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        found = _DURATION.match(str(value))
        if not found:
            self.fail(f"{value!r} is not a duration like 30d, 12h, 90m, 45s or 2w", param, ctx)
        return timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})


def parse_filter(values: Sequence[str]) -> dict[str, Any] | None:
    """`key=value` pairs (the value read as JSON when it is JSON: `step=3` is a number,
    `user=ann` a string) or one JSON object; None when there are none."""
    out: dict[str, Any] = {}
    for value in values:
        text = value.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as e:
                raise click.BadParameter(f"{value!r} is not a JSON object: {e.msg}") from e
            if not isinstance(parsed, dict):
                raise click.BadParameter(f"{value!r} is not a JSON object")
            out.update(parsed)
            continue
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is neither key=value nor a JSON object")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out or None


@dataclass
class Context:
    url: str
    schema: str | None
    as_json: bool
    console: Console
    errors: Console

    @contextmanager
    def saver(self, blob_encoding: str = "auto") -> Iterator[SQLAlchemySaver]:
        """A saver on the URL; `auto`: it reads blob rows in the incremental encoding
        where the database records them, and never turns the encoding on."""
        try:
            url = make_url(self.url)
        except ArgumentError as e:
            raise click.UsageError(f"--url: {e}") from e
        kwargs: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        # no retries in the CLI: a wrong URL or a server that is down says so at once
        with SQLAlchemySaver.from_conn_string(
            url, schema=self.schema, retry=False, blob_encoding=blob_encoding, **kwargs
        ) as saver:
            yield saver

    def emit(self, data: Any, human: Callable[[], None]) -> None:
        if self.as_json:
            click.echo(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2))
        else:
            human()

    def progress(self) -> Progress:
        return Progress(console=self.errors, transient=True, disable=not self.show_progress)

    @property
    def show_progress(self) -> bool:
        return not self.as_json and self.errors.is_terminal

    def confirm(self, question: str, yes: bool) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            raise click.UsageError("no terminal to confirm on: pass --yes to go ahead")
        if not click.confirm(question, default=False, err=True):
            raise click.Abort()


def _json_default(value: Any) -> Any:
    """Channel values as JSON: datetimes as ISO text, LangChain messages and other
    pydantic models as their fields, bytes as text, sets as lists, the rest as repr."""
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def common(command: F) -> F:
    """`--url`, `--schema` and `--json` on every command (they may follow its name)."""
    options = [
        click.option(
            "--url",
            envvar=URL_ENV,
            required=True,
            help=f"Database URL (or {URL_ENV}).",
        ),
        click.option("--schema", envvar=SCHEMA_ENV, default=None, help="PostgreSQL schema."),
        click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _context(url: str, schema: str | None, as_json: bool) -> Context:
    return Context(url, schema, as_json, Console(), Console(stderr=True))


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _config(thread: str, ns: str | None = None, checkpoint: str | None = None) -> Any:
    configurable: dict[str, Any] = {"thread_id": thread}
    if ns is not None:
        configurable["checkpoint_ns"] = ns
    if checkpoint is not None:
        configurable["checkpoint_id"] = checkpoint
    return {"configurable": configurable}


def _require_thread(saver: SQLAlchemySaver, thread: str) -> None:
    if saver.get_tuple(_config(thread)) is None and not any(
        True for _ in saver.list(_config(thread), limit=1)
    ):
        raise CommandError(f"unknown thread {thread!r}: it has no checkpoints")


class CommandError(click.ClickException):
    """A failure said in one line (exit 1)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def app() -> None:
    """Find, inspect, prune and sweep LangGraph checkpoint threads, and migrate the
    database (`checkpointer db upgrade head`)."""


@app.command()
@common
@click.option("--filter", "filters", multiple=True, help="key=value or a JSON object.")
@click.option("--idle-for", type=Duration(), help="Only threads idle this long (30d).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--cursor", help="The cursor a previous page printed.")
def threads(
    url: str,
    schema: str | None,
    as_json: bool,
    filters: tuple[str, ...],
    idle_for: timedelta | None,
    limit: int,
    cursor: str | None,
) -> None:
    """List threads, most recently updated first.

    JSON: {"threads": [{"thread_id", "created_at", "updated_at", "checkpoint_count",
    "checkpoint_id", "metadata"}], "cursor": str | null}"""
    ctx = _context(url, schema, as_json)
    wanted = parse_filter(filters)
    before = datetime.now(timezone.utc) - idle_for if idle_for is not None else None
    with ctx.saver() as saver:
        page = saver.list_threads(filter=wanted, updated_before=before, limit=limit, cursor=cursor)

    def human() -> None:
        table = Table("thread", "updated", "created", "checkpoints", "step", "source")
        for t in page.threads:
            table.add_row(
                t.thread_id,
                _time(t.updated_at),
                _time(t.created_at),
                str(t.checkpoint_count),
                str(t.metadata.get("step", "")),
                str(t.metadata.get("source", "")),
            )
        ctx.console.print(table)
        if page.cursor:
            ctx.console.print(f"next page: --cursor {page.cursor}")

    ctx.emit(page.as_dict(), human)


@app.command()
@common
@click.argument("thread")
@click.option("--ns", default=None, help="Only this namespace ('' the root graph).")
@click.option("--limit", type=click.IntRange(min=1), default=None)
def history(
    url: str, schema: str | None, as_json: bool, thread: str, ns: str | None, limit: int | None
) -> None:
    """A thread's checkpoints, newest first.

    JSON: {"thread_id", "checkpoints": [{"checkpoint_id", "checkpoint_ns",
    "parent_checkpoint_id", "step", "source", "created_at", "pending_writes"}]}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        _require_thread(saver, thread)
        rows = [
            {
                "checkpoint_id": t.config["configurable"]["checkpoint_id"],
                "checkpoint_ns": t.config["configurable"]["checkpoint_ns"],
                "parent_checkpoint_id": (t.parent_config or {})
                .get("configurable", {})
                .get("checkpoint_id"),
                "step": t.metadata.get("step"),
                "source": t.metadata.get("source"),
                "created_at": (
                    t.checkpoint.get("ts")
                    or _iso(id_time(t.config["configurable"]["checkpoint_id"]))
                ),
                "pending_writes": len(t.pending_writes or ()),
            }
            for t in saver.list(_config(thread, ns), limit=limit)
        ]

    def human() -> None:
        table = Table("checkpoint", "ns", "step", "source", "time", "pending writes")
        for r in rows:
            table.add_row(
                r["checkpoint_id"],
                r["checkpoint_ns"],
                str(r["step"]),
                str(r["source"] or ""),
                str(r["created_at"] or ""),
                str(r["pending_writes"]),
            )
        ctx.console.print(table)

    ctx.emit({"thread_id": thread, "checkpoints": rows}, human)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@app.command()
@common
@click.argument("thread")
@click.option("--checkpoint", "checkpoint_id", default=None, help="A checkpoint id.")
@click.option("--ns", default="", show_default=True, help="The namespace.")
def show(
    url: str,
    schema: str | None,
    as_json: bool,
    thread: str,
    checkpoint_id: str | None,
    ns: str,
) -> None:
    """A checkpoint's state (the latest by default), values decoded by the saver's
    serializer. Always JSON: {"thread_id", "checkpoint_ns", "checkpoint_id",
    "parent_checkpoint_id", "metadata", "values", "versions", "pending_writes":
    [[task_id, channel, value]]}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        found = saver.get_tuple(_config(thread, ns, checkpoint_id))
    if found is None:
        what = f"checkpoint {checkpoint_id!r} of " if checkpoint_id else ""
        raise CommandError(f"unknown {what}thread {thread!r} (namespace {ns!r})")
    state = {
        "thread_id": thread,
        "checkpoint_ns": ns,
        "checkpoint_id": found.config["configurable"]["checkpoint_id"],
        "parent_checkpoint_id": (found.parent_config or {})
        .get("configurable", {})
        .get("checkpoint_id"),
        "metadata": found.metadata,
        "values": found.checkpoint.get("channel_values", {}),
        "versions": found.checkpoint.get("channel_versions", {}),
        "pending_writes": [list(w) for w in found.pending_writes or ()],
    }
    text = json.dumps(state, default=_json_default, ensure_ascii=False, indent=2)
    if as_json:
        click.echo(text)
    else:
        ctx.console.print_json(text)


@app.command()
@common
@click.argument("thread_ids", nargs=-1, required=True)
@click.option("--keep-last", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def prune(
    url: str,
    schema: str | None,
    as_json: bool,
    thread_ids: tuple[str, ...],
    keep_last: int,
    yes: bool,
) -> None:
    """Keep the newest N checkpoints of each namespace of these threads (and what they
    need to be read and resumed); delete the rest.

    JSON: {"threads": [str], "keep_last": int}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        for thread in thread_ids:
            _require_thread(saver, thread)
        ctx.confirm(
            f"Prune {len(thread_ids)} thread(s) to their last {keep_last} checkpoint(s)?", yes
        )
        with ctx.progress() as bar:
            task = bar.add_task("pruning", total=len(thread_ids))
            for thread in thread_ids:
                saver.prune([thread], keep_last=keep_last)
                bar.advance(task)
    ctx.emit(
        {"threads": list(thread_ids), "keep_last": keep_last},
        lambda: ctx.console.print(f"pruned {len(thread_ids)} thread(s) to {keep_last}"),
    )


@app.command()
@common
@click.option("--idle-for", type=Duration(), required=True, help="30d, 12h, ...")
@click.option(
    "--strategy",
    type=click.Choice(["delete", "keep_latest"]),
    default="delete",
    show_default=True,
)
@click.option("--keep", "keep", multiple=True, help="Never sweep threads matching this filter.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--dry-run", is_flag=True, help="Report what would go; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def sweep(
    url: str,
    schema: str | None,
    as_json: bool,
    idle_for: timedelta,
    strategy: str,
    keep: tuple[str, ...],
    limit: int,
    dry_run: bool,
    yes: bool,
) -> None:
    """Delete (or prune to their latest state) threads idle for `--idle-for`.

    JSON: {"strategy", "dry_run", "threads", "checkpoints", "blobs", "writes", "bytes",
    "batches"}"""
    ctx = _context(url, schema, as_json)
    pinned = parse_filter(keep)
    with ctx.saver() as saver:
        if not dry_run:
            ctx.confirm(
                f"{'Delete' if strategy == 'delete' else 'Prune'} up to {limit} threads idle "
                f"for {idle_for}?",
                yes,
            )
        with ctx.progress() as bar:
            bar.add_task("sweeping", total=None)
            report = saver.sweep(
                idle_for=idle_for, strategy=strategy, keep=pinned, limit=limit, dry_run=dry_run
            )

    def human() -> None:
        verb = "would remove" if dry_run else "removed"
        table = Table("threads", "checkpoints", "writes", "blobs", "bytes", title=verb)
        table.add_row(
            str(report.threads),
            str(report.checkpoints),
            str(report.writes),
            str(report.blobs),
            _size(report.bytes),
        )
        ctx.console.print(table)

    ctx.emit(report.as_dict(), human)


@app.command()
@common
@click.argument("source")
@click.argument("target")
def copy(url: str, schema: str | None, as_json: bool, source: str, target: str) -> None:
    """Copy a thread (every namespace, write and blob) to a new thread id.

    JSON: {"source", "target"}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        _require_thread(saver, source)
        saver.copy_thread(source, target)
    ctx.emit(
        {"source": source, "target": target},
        lambda: ctx.console.print(f"copied {source} to {target}"),
    )


@app.command()
@common
@click.argument("thread_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(
    url: str, schema: str | None, as_json: bool, thread_ids: tuple[str, ...], yes: bool
) -> None:
    """Delete threads.

    JSON: {"deleted": [str]}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        for thread in thread_ids:
            _require_thread(saver, thread)
        ctx.confirm(f"Delete {len(thread_ids)} thread(s)?", yes)
        with ctx.progress() as bar:
            task = bar.add_task("deleting", total=len(thread_ids))
            for thread in thread_ids:
                saver.delete_thread(thread)
                bar.advance(task)
    ctx.emit(
        {"deleted": list(thread_ids)},
        lambda: ctx.console.print(f"deleted {len(thread_ids)} thread(s)"),
    )


@app.command("decode-blobs")
@common
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def decode_blobs(url: str, schema: str | None, as_json: bool, batch: int, yes: bool) -> None:
    """Rewrite blob rows stored with blob_encoding="incremental" as plain blobs, so
    savers without the option (and the official saver) can read the database again.
    Stop every writer that has the option first.

    JSON: {"rewritten": int}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver("incremental") as saver:
        ctx.confirm("Rewrite every incrementally encoded blob row as a plain one?", yes)
        rewritten = saver.decode_blobs(batch=batch)
    ctx.emit(
        {"rewritten": rewritten},
        lambda: ctx.console.print(f"rewrote {rewritten} blob row(s) as plain blobs"),
    )


@app.command("delete-runs")
@common
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_runs(
    url: str, schema: str | None, as_json: bool, run_ids: tuple[str, ...], yes: bool
) -> None:
    """Delete the checkpoints of these runs (metadata run_id).

    JSON: {"run_ids": [str]}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        ctx.confirm(f"Delete the checkpoints of {len(run_ids)} run(s)?", yes)
        saver.delete_for_runs(list(run_ids))
    ctx.emit(
        {"run_ids": list(run_ids)},
        lambda: ctx.console.print(f"deleted the checkpoints of {len(run_ids)} run(s)"),
    )


@app.command()
@common
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True)
def stats(url: str, schema: str | None, as_json: bool, top: int) -> None:
    """Rows and bytes per table, threads, activity, the largest threads.

    JSON: {"tables": [{"table", "rows", "bytes", "dead_rows"}], "threads",
    "checkpoints", "oldest", "newest", "largest_threads": [{"thread_id", "bytes"}],
    "database_bytes", "free_bytes"}"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        found = saver.stats(top)

    def human() -> None:
        tables = Table("table", "rows", "bytes", "dead rows")
        for t in found.tables:
            dead = "" if t.dead_rows is None else str(t.dead_rows)
            tables.add_row(t.table, str(t.rows), _size(t.bytes), dead)
        ctx.console.print(tables)
        ctx.console.print(
            f"{found.threads} threads, {found.checkpoints} checkpoints, "
            f"oldest {_time(found.oldest)}, newest {_time(found.newest)}"
        )
        if found.database_bytes is not None:
            ctx.console.print(
                f"database file {_size(found.database_bytes)}, "
                f"free {_size(found.free_bytes)} (VACUUM gives it back)"
            )
        if found.largest_threads:
            largest = Table("thread", "bytes", title="largest threads")
            for size in found.largest_threads:
                largest.add_row(size.thread_id, _size(size.bytes))
            ctx.console.print(largest)

    ctx.emit(found.as_dict(), human)


@app.command()
@common
def distribute(url: str, schema: str | None, as_json: bool) -> None:
    """On Citus, distribute the tables by thread_id, colocated; safe to run again.
    Nothing on a database without the citus extension.

    JSON: {"distributed": [table, ...]} (the tables this run distributed)"""
    ctx = _context(url, schema, as_json)
    with ctx.saver() as saver:
        done = saver.distribute()

    def human() -> None:
        if done:
            ctx.console.print(f"distributed by thread_id: {', '.join(done)}")
        else:
            ctx.console.print("nothing to distribute (already distributed, or not Citus)")

    ctx.emit({"distributed": done}, human)


MIGRATIONS = ("upgrade", "downgrade", "current", "history", "check", "heads", "show", "stamp")


@app.group()
def db() -> None:
    """Migrations: upgrade, downgrade, current, history, check (Alembic, on the
    scripts this package ships; Alembic's own options follow the command)."""


def _migration(name: str) -> None:
    @db.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    @click.option("--url", envvar=URL_ENV, default=None, help=f"Database URL (or {URL_ENV}).")
    @click.option("--schema", envvar=SCHEMA_ENV, default=None, help="PostgreSQL schema.")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(url: str | None, schema: str | None, args: tuple[str, ...]) -> None:
        options = [
            *(["-x", f"url={url}"] if url else []),
            *(["-x", f"schema={schema}"] if schema else []),
        ]
        raise SystemExit(run_migrations_cli([*options, name, *args], f"checkpointer db {name}"))

    command.__doc__ = f"alembic {name} on this package's migrations."


for _name in MIGRATIONS:
    _migration(_name)


@app.command(
    "upgrade",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def upgrade(args: tuple[str, ...]) -> None:
    """Alias of `db upgrade` (kept from earlier docs)."""
    raise SystemExit(run_migrations_cli(["upgrade", *args], "checkpointer upgrade"))


def run(argv: Sequence[str], prog: str) -> int:
    """Run one command; its exit status (never a traceback for expected failures)."""
    if not argv:
        click.echo(app.get_help(click.Context(app, info_name=prog)), err=True)
        click.echo(
            "\nno command given: to migrate the database, run "
            f"`{prog} db upgrade head` (or `{prog} upgrade head`)",
            err=True,
        )
        return 2
    try:
        app.main(list(argv), prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except CheckpointerError as e:
        click.echo(f"error: {_first_line(e)}", err=True)
        return 1
    except (SQLAlchemyError, OSError) as e:
        click.echo(f"error: {_database_error(e)}", err=True)
        return 1
    except (ValueError, TypeError) as e:
        click.echo(f"error: {_first_line(e)}", err=True)
        return 1
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _database_error(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return f"database: {_first_line(original)}"


__all__ = ["app", "parse_filter", "run"]
