"""The `checkpointer` command and `python -m checkpointer`: one entry point.

Operations (`threads`, `history`, `show`, `prune`, `sweep`, `copy`, `delete`,
`delete-runs`, `stats`, `decode-blobs`) and `db ...` live in `checkpointer.commands`,
which needs the `[cli]` extra (click, rich). The Alembic command line of earlier
releases keeps working without it: an argument list that starts with one of its
options (`-x url=...`) or with an Alembic command other than ours (`upgrade head`,
`current`, `check`, ...) goes to `checkpointer.cli.run_migrations_cli` as before.
`history THREAD` and `show THREAD` name our commands; `history` without a thread (or
with Alembic's `-r`, `-v`, `-i`) is still Alembic's, and Alembic's `show REV` is
`checkpointer db show REV`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import alembic_commands, run_migrations_cli

OURS = frozenset(
    {
        *("threads", "history", "show", "prune", "sweep", "copy", "delete", "delete-runs"),
        *("stats", "decode-blobs"),
    }
)
"""Our commands, and `db`: everything else an Alembic command line would take is its."""

MISSING_EXTRA = (
    "the `checkpointer {command}` command needs the command line extra: "
    "pip install 'langgraph-checkpoint-sqlalchemy[cli]'"
)


_HISTORY_OPTIONS = frozenset({"-r", "--rev-range", "-v", "--verbose", "-i", "--indicate-current"})


def _legacy(argv: Sequence[str]) -> bool:
    """Whether `argv` is an invocation of the Alembic command line we shipped before."""
    if not argv:
        return False
    first = argv[0]
    if first == "history":
        rest = argv[1:]
        return not [a for a in rest if not a.startswith("-")] or bool(
            _HISTORY_OPTIONS & {a.split("=")[0] for a in rest}
        )
    if first in OURS or first in ("db", "--help", "-h", "--version"):
        return False
    return first.startswith("-") or first in alembic_commands()


def main(argv: Sequence[str] | None = None, prog: str = "checkpointer") -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if _legacy(args):
        return run_migrations_cli(args, prog)
    try:
        from .commands import run
    except ImportError:
        name = args[0] if args else "--help"
        print(f"{prog}: error: {MISSING_EXTRA.format(command=name)}", file=sys.stderr)
        return 1
    return run(args, prog)


__all__ = ["main"]
