"""`python -m checkpointer upgrade head`: this installed package's migrations, for
deploys that have the wheel but no repository checkout (see `checkpointer.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
