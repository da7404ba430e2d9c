"""`interrupt()` for the test graphs, on every Python we support.

LangGraph finds the running graph's config through a context variable. Before Python 3.11,
asyncio cannot hand a context to a new task, so in an async run (`ainvoke`) a node calling
`interrupt()` raises "Called get_config outside of a runnable context" (LangGraph's limit on
3.10, not the saver's). A node that asks for its `config` and passes it here works on 3.10 as it
does on 3.11+; docs/quickstart.md tells 3.10 users the same.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.types import interrupt


@contextmanager
def in_run(config: RunnableConfig) -> Iterator[None]:
    """Make the node's own `config` current where asyncio did not (Python 3.10); a no-op on
    3.11+. An async `@entrypoint` that calls tasks and `interrupt()` wraps its body in it."""
    if sys.version_info >= (3, 11):
        yield
        return
    token = var_child_runnable_config.set(config)
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


def ask(value: Any, config: RunnableConfig) -> Any:
    """`interrupt(value)` from a node that was handed its `config`."""
    with in_run(config):
        return interrupt(value)
