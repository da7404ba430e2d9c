"""`python -m checkpointer upgrade head`: the Alembic command line on the scripts this
installed package ships, for deploys that have the wheel but no repository checkout.
Takes every Alembic option (`--sql`, `-x url=...`, `-x schema=...`); the URL and the
schema may also come from CHECKPOINTER_DATABASE_URL and CHECKPOINTER_SCHEMA."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic.config import CommandLine, Config

from .migrations import script_location


def main(argv: Sequence[str] | None = None) -> None:
    cli = CommandLine(prog="python -m checkpointer")
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments: try `python -m checkpointer upgrade head`")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-5.5s [%(name)s] %(message)s"))
    logger = logging.getLogger("alembic")
    logger.setLevel(logging.INFO)  # "Running upgrade 0001 -> 0002", as `alembic` prints
    logger.addHandler(handler)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    config = Config(cmd_opts=options)
    config.set_main_option("script_location", script_location())
    cli.run_cmd(config, options)


if __name__ == "__main__":
    main()
