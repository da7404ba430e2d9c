"""`python -m checkpointer ...`: the `checkpointer` command (see `checkpointer.console`);
`python -m checkpointer upgrade head` keeps running this package's migrations."""

from __future__ import annotations

from .console import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m checkpointer"))
