"""The command line of an installed package: this package's migrations, run by Alembic
on the scripts the wheel ships, and nothing that would write into the package.

`python -m checkpointer upgrade head` is the deploy step where there is a wheel but no
repository checkout. Alembic's options are kept (`--sql`, `-x url=...`, `-x
schema=...`; the URL and schema may also come from CHECKPOINTER_DATABASE_URL and
CHECKPOINTER_SCHEMA), but only the commands in `ACCEPTED` run: the others (`revision`,
`merge`, `edit`, `init`, anything a later Alembic adds) would write into the installed
package's scripts, whose head must change only with a release, or have no use here.

`run_migrations_cli` is the reusable part (a `checkpointer db ...` command can call it);
`main` is `python -m checkpointer`.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Sequence

from alembic.config import CommandLine, Config

from alembic import command

from .errors import MissingDriverError
from .migrations import SCHEMA_ENV, URL_ENV, VERSION_TABLE, script_location

STAMP_WARNING = (
    f"warning: `stamp` records a revision in {VERSION_TABLE} without running any "
    "migration; the tables stay as they are. Use it only for tables known to match "
    "that revision (a database migrated elsewhere): after a wrong stamp the saver runs "
    "on tables it does not expect."
)

ACCEPTED: dict[str, str | None] = {
    "upgrade": None,
    "downgrade": None,
    "current": None,
    "history": None,
    "check": None,
    "heads": None,
    "branches": None,
    "show": None,
    "stamp": STAMP_WARNING,
}
"""Commands that run, each with the warning printed first (None: no warning). All but
`upgrade`, `downgrade` and `stamp` only read."""

WRITES_SCRIPTS = frozenset({"revision", "merge", "edit", "init"})
"""Alembic commands that write migration scripts: refused with where to write yours."""

REFUSED_EXIT = 2
"""Exit status of a refused command (as for a usage error)."""

OWN_MIGRATIONS = (
    "This package's migrations are not edited: they change only with a release of "
    "langgraph-checkpoint-sqlalchemy. Migrations of your own application belong in your "
    "own Alembic environment (`alembic init migrations` in your project); to bring our "
    "tables up with yours, call checkpointer.migrations.upgrade_from_host_env(connection) "
    "at the end of its env.py (see Deploying in the documentation, docs/deploying.md)."
)


def alembic_commands() -> frozenset[str]:
    """The commands Alembic's command line offers (its public `alembic.command`
    functions, the same list `CommandLine` builds its subcommands from)."""
    return frozenset(
        name
        for name, fn in inspect.getmembers(command, inspect.isfunction)
        if not name.startswith("_") and fn.__module__ == command.__name__
    )


def refusal(name: str) -> str | None:
    """Why `name` does not run here (None: it does)."""
    if name in ACCEPTED:
        return None
    accepted = ", ".join(ACCEPTED)
    if name in WRITES_SCRIPTS:
        return (
            f"`{name}` is refused: it would write into this installed package's migration "
            f"scripts ({script_location()}).\n{OWN_MIGRATIONS}\nAccepted here: {accepted}."
        )
    return f"`{name}` is not offered here. Accepted: {accepted}."


def _named_command(argv: Sequence[str]) -> str | None:
    """The Alembic command `argv` names, looked up before parsing, so a refused one is
    refused with its reason rather than a complaint about its arguments."""
    commands = alembic_commands()
    return next((token for token in argv if token in commands), None)


def _refuse(prog: str, reason: str) -> int:
    print(f"{prog}: {reason}", file=sys.stderr)
    return REFUSED_EXIT


_STDERR = logging.StreamHandler()
_STDERR.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))


def _log_to_stderr() -> None:
    """Print Alembic's "Running upgrade ..." lines and ours, as `alembic` does with its
    ini (the handler added once per process)."""
    for name in ("alembic", "checkpointer"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if _STDERR not in logger.handlers:
            logger.addHandler(_STDERR)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def run_migrations_cli(argv: Sequence[str], prog: str) -> int:
    """Run one accepted Alembic command on this package's scripts; the exit status."""
    named = _named_command(argv)
    reason = refusal(named) if named else None
    if reason:
        return _refuse(prog, reason)
    cli = CommandLine(prog=prog)
    cli.parser.description = (
        "Run the database migrations of langgraph-checkpoint-sqlalchemy (Alembic, on the "
        f"scripts this package ships). Database URL: -x url=... or {URL_ENV}; PostgreSQL "
        f"schema: -x schema=... or {SCHEMA_ENV}."
    )
    cli.parser.epilog = f"Accepted commands: {', '.join(ACCEPTED)}. " + OWN_MIGRATIONS
    options = cli.parser.parse_args(list(argv))
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments: try `upgrade head`")
    name = options.cmd[0].__name__
    reason = refusal(name)
    if reason:  # whatever the lookup above missed: never run a refused command
        return _refuse(prog, reason)
    warning = ACCEPTED[name]
    if warning:
        print(warning, file=sys.stderr)
    _log_to_stderr()
    config = Config(cmd_opts=options)
    config.set_main_option("script_location", script_location())
    try:
        cli.run_cmd(config, options)
    except MissingDriverError as error:  # a URL whose driver is missing: say which extra
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m checkpointer ...`"""
    return run_migrations_cli(sys.argv[1:] if argv is None else argv, "python -m checkpointer")


__all__ = ["ACCEPTED", "WRITES_SCRIPTS", "main", "refusal", "run_migrations_cli"]
