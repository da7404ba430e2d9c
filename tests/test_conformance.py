"""The official conformance suite (`langgraph-checkpoint-conformance`) per dialect."""

from __future__ import annotations

from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from sqlalchemy.ext.asyncio import create_async_engine

from checkpointer import AsyncSQLAlchemySaver


async def test_conformance(db_url: str) -> None:
    engine = create_async_engine(db_url)

    @checkpointer_test(name=f"AsyncSQLAlchemySaver[{engine.dialect.name}]")
    async def factory() -> AsyncIterator[AsyncSQLAlchemySaver]:
        yield AsyncSQLAlchemySaver(engine)

    try:
        report = await validate(factory, progress=ProgressCallbacks.verbose())
    finally:
        await engine.dispose()
    report.print_report()
    for capability in BASE_CAPABILITIES:
        result = report.results[capability.value]
        assert result.detected, f"{capability.value} not detected"
        assert result.passed, f"{capability.value} failed: {result.failures}"
