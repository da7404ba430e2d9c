"""Show that each unit test can fail: apply the deliberate mutation its docstring
names, run that test alone, expect it to fail, restore the file. Run by hand from the
repository root (it edits `checkpointer/` and `tests/unit/` files in place for a few
seconds each, and restores them even when interrupted):

    .venv/bin/python -m tests.unit.mutate            # every mutation
    .venv/bin/python -m tests.unit.mutate prune      # those whose test names match

A mutation whose text no longer appears in its file is reported as `gone` (the code
moved: update the table and the test's docstring together)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Mutation:
    test: str
    """A pytest node id, relative to tests/unit/."""
    file: str
    old: str
    new: str


P, C = "checkpointer/plans.py", "checkpointer/codec.py"
S = "checkpointer/statements/"

MUTATIONS = [
    # plans/test_put.py
    Mutation(
        "plans/test_put.py::test_put_yields_what_the_real_run_did",
        P,
        "self._put_separately(row, blobs), atomic=bool(blobs))",
        "self._put_separately(row, blobs), atomic=False)",
    ),
    Mutation(
        "plans/test_put.py::test_put_on_postgresql_is_one_statement_with_blob_arrays",
        P,
        "if self.statements.dialect.cte_dml:",
        "if False:",
    ),
    Mutation(
        "plans/test_put.py::test_delta_snapshot_is_a_blob_marked_inline",
        C,
        "inline[channel] = True  # marker",
        "pass  # marker",
    ),
    # plans/test_put_staged.py
    Mutation(
        "plans/test_put_staged.py::test_large_blob_is_staged_in_chunks",
        P,
        "range(size, len(data), size)",
        "range(size, len(data) - 1, size)",
    ),
    Mutation(
        "plans/test_put_staged.py::test_large_write_is_staged_in_chunks",
        P,
        "return Plan(self._put_writes_staged(rows), atomic=True)",
        "return Plan(self._put_writes_staged(rows), atomic=False)",
    ),
    Mutation(
        "plans/test_put_staged.py::test_small_blobs_are_not_staged",
        P,
        "len(data) > self.large_blob",
        "len(data) >= 0",
    ),
    # plans/test_put_writes.py
    Mutation(
        "plans/test_put_writes.py::test_put_writes_yields_what_the_real_run_did",
        P,
        "return list(by_idx.values()) if len(by_idx) < len(rows) else rows",
        "return rows",
    ),
    Mutation(
        "plans/test_put_writes.py::test_special_channels_use_their_fixed_index",
        C,
        "idx=WRITES_IDX_MAP.get(channel, idx),",
        "idx=idx,",
    ),
    Mutation(
        "plans/test_put_writes.py::test_no_writes_no_statement",
        P,
        "        if not rows:\n            return Plan(_none())\n",
        "",
    ),
    # plans/test_get_tuple.py
    Mutation(
        "plans/test_get_tuple.py::test_get_tuple_yields_and_returns_what_the_real_run_did",
        P,
        "Step(self.statements.get_latest, params, fetch=True, last=True)",
        "Step(self.statements.get_latest, params, fetch=True)",
    ),
    Mutation(
        "plans/test_get_tuple.py::test_format_1_checkpoint_reads_its_parents_sends",
        C,
        'if document.get("v", 0) < 4 and',
        'if document.get("v", 0) < 1 and',
    ),
    Mutation(
        "plans/test_get_tuple.py::test_blobs_and_writes_join_their_checkpoint",
        C,
        "if blob[TYPE] != EMPTY:",
        "if True:",
    ),
    # plans/test_list.py
    Mutation(
        "plans/test_list.py::test_list_yields_what_the_real_run_did",
        P,
        "if len(tuples) < size:",
        "if len(tuples) <= size:",
    ),
    Mutation(
        "plans/test_list.py::test_next_page_starts_after_the_last_emitted",
        P,
        'last = tuples[-1].config["configurable"]',
        'last = tuples[0].config["configurable"]',
    ),
    Mutation(
        "plans/test_list.py::test_limit_across_pages_bounds_the_last_page",
        P,
        "remaining -= len(tuples)",
        "remaining -= 0",
    ),
    Mutation(
        "plans/test_list.py::test_limit_zero_reads_nothing",
        P,
        "if limit <= 0:",
        "if limit < 0:",
    ),
    Mutation(
        "plans/test_list.py::test_filter_is_bound_not_built_into_the_statement",
        P,
        "page_params = {**params, **filter_params, **key}",
        "page_params = {**params, **key}",
    ),
    # plans/test_delete.py
    Mutation(
        "plans/test_delete.py::test_delete_thread_yields_what_the_real_run_did",
        P,
        "{THREAD_ID: codec.thread_key(thread_id)}),\n            atomic=True,",
        "{THREAD_ID: codec.thread_key(thread_id)}),\n            atomic=False,",
    ),
    Mutation(
        "plans/test_delete.py::test_delete_for_runs_yields_what_the_real_run_did",
        P,
        "threads |= found",
        "pass",
    ),
    Mutation(
        "plans/test_delete.py::test_unknown_runs_only_look",
        P,
        "if not found:\n                continue",
        "if not found:\n                pass",
    ),
    # plans/test_copy_thread.py
    Mutation(
        "plans/test_copy_thread.py::test_copy_thread_yields_what_the_real_run_did",
        P,
        "if any(state.values()):",
        "if False:",
    ),
    Mutation(
        "plans/test_copy_thread.py::test_not_empty_target_says_what_it_has",
        P,
        'kinds = ", ".join(k for k, v in state.items() if v)',
        'kinds = ", ".join(k for k, v in state.items() if not v)',
    ),
    Mutation(
        "plans/test_copy_thread.py::test_sqlite_takes_the_write_lock_before_reading",
        P,
        "        yield from self._lock()\n        rows = yield Step(s.thread_rows",
        "        rows = yield Step(s.thread_rows",
    ),
    # plans/test_prune.py
    Mutation(
        "plans/test_prune.py::test_prune_yields_what_the_real_run_did",
        P,
        "                if r[PARENT_SENDS]:\n"
        "                    keep.append(r[PARENT_CHECKPOINT_ID])\n",
        "",
    ),
    Mutation(
        "plans/test_prune.py::test_keep_latest_keeps_the_delta_chain",
        P,
        "if newest[0][COUNT] <= keep_last:",
        "if newest[0][COUNT] < keep_last:",
    ),
    Mutation(
        "plans/test_prune.py::test_delete_strategy_deduplicates_threads",
        P,
        'ids = list(dict.fromkeys(_names(thread_ids, "thread_ids")))',
        'ids = _names(thread_ids, "thread_ids")',
    ),
    Mutation(
        "plans/test_prune.py::test_keep_last_keeps_each_kept_checkpoints_chain",
        P,
        "                if channels:\n                    chain = yield Step(",
        "                if channels and r[RANK] == 1:\n                    chain = yield Step(",
    ),
    # plans/test_threads.py
    Mutation(
        "plans/test_threads.py::test_thread_plans_yield_what_the_real_run_did",
        P,
        "                created_at=id_time(r[FIRST]),",
        "                created_at=id_time(r[HEAD]),",
    ),
    Mutation(
        "plans/test_threads.py::test_a_full_page_has_a_cursor_to_the_next",
        P,
        "        last = threads[-1] if len(threads) == limit else None",
        "        last = threads[0] if len(threads) == limit else None",
    ),
    Mutation(
        "plans/test_threads.py::test_bad_arguments_fail_before_any_statement",
        P,
        "        if limit <= 0:\n"
        '            raise ValueError(f"limit must be a positive number of threads, got {limit}")\n'
        "        params, shape_args",
        "        params, shape_args",
    ),
    # plans/test_sweep.py
    Mutation(
        "plans/test_sweep.py::test_sweep_plans_yield_what_the_real_run_did",
        P,
        "        r.writes += max(0, int(removed[WRITES]))",
        "        r.writes += max(0, int(removed[BLOBS]))",
    ),
    Mutation(
        "plans/test_sweep.py::test_a_dry_run_changes_nothing",
        P,
        '        elif self.strategy == "delete":',
        '        if self.strategy == "delete":',
    ),
    Mutation(
        "plans/test_sweep.py::test_batches_follow_the_keyset_and_stop_at_the_limit",
        P,
        "        size = min(SWEEP_BATCH, self.limit - self.report.threads)",
        "        size = SWEEP_BATCH",
    ),
    Mutation(
        "plans/test_sweep.py::test_bad_arguments_fail_before_any_statement",
        P,
        "        if now is not None and not isinstance(now, datetime):\n"
        '            raise TypeError(f"now must be a datetime, got {now!r}")\n',
        "",
    ),
    # plans/test_stats.py
    Mutation(
        "plans/test_stats.py::test_stats_plans_yield_what_the_real_run_did",
        P,
        "        if top:\n            largest = ",
        "        if True:\n            largest = ",
    ),
    # plans/test_delta_history.py
    Mutation(
        "plans/test_delta_history.py::test_delta_history_yields_and_returns_what_the_real_run_did",
        P,
        "seeds[channel] = (r[VALUE] or {}).get(channel)",
        "seeds[channel] = r[VALUE]",
    ),
    Mutation(
        "plans/test_delta_history.py::test_writes_come_oldest_first_whatever_the_row_order",
        P,
        "ordered = sorted(",
        "ordered = (lambda rows, key: list(rows))(",
    ),
    Mutation(
        "plans/test_delta_history.py::test_no_channels_no_statement",
        P,
        "        if not names:\n            return Plan(_value({}))\n",
        "",
    ),
    # plans/test_coverage.py
    Mutation(
        "plans/test_coverage.py::test_every_planner_method_is_recorded",
        "tests/unit/replay.py",
        '    "prune",\n',
        "",
    ),
    Mutation(
        "plans/test_coverage.py::test_every_statement_is_run_by_a_recorded_plan",
        "tests/unit/replay.py",
        '    "copy_thread",\n',
        "",
    ),
    # statements/test_recorded_params.py
    Mutation(
        "statements/test_recorded_params.py::test_recorded_params_fill_exactly_the_bound_keys",
        S + "reads.py",
        "q = q.where(cp.c.thread_id == bindparam(THREAD_ID))",
        'q = q.where(cp.c.thread_id == bindparam("thread"))',
    ),
    Mutation(
        "statements/test_recorded_params.py::test_no_input_value_is_rendered_into_the_sql",
        S + "writes.py",
        "delete(t).where(t.c.thread_id == bindparam(THREAD_ID))",
        "delete(t).where(t.c.thread_id == bindparam(THREAD_ID, literal_execute=True))",
    ),
    # statements/test_compile.py
    Mutation(
        "statements/test_compile.py::test_statement_binds_its_keys_and_holds_no_value",
        S + "operations.py",
        "thread = bindparam(THREAD_ID, type_=Text)\n        return select(",
        'thread = bindparam("thread", type_=Text)\n        return select(',
    ),
    Mutation(
        "statements/test_compile.py::test_statements_are_built_once",
        S + "history.py",
        "    @cache  # noqa: B019 - one Statements per dialect, kept for the process\n"
        "    def delta_history(",
        "    def delta_history(",
    ),
    Mutation(
        "statements/test_compile.py::test_only_dialects_imports_sqlalchemy_dialects",
        S + "writes.py",
        "from sqlalchemy import Text, bindparam, delete, select\n",
        "from sqlalchemy import Text, bindparam, delete, select\n"
        "from sqlalchemy.dialects import postgresql  # noqa: F401\n",
    ),
    Mutation(
        "statements/test_compile.py::test_rows_carry_the_labels_plans_read",
        S + "threads.py",
        "                ranked.c[COUNT],\n",
        '                ranked.c[COUNT].label("count"),\n',
    ),
    Mutation(
        "statements/test_compile.py::test_families_define_each_name_once",
        S + "history.py",
        "    @cache  # noqa: B019 - one Statements per dialect, kept for the process\n"
        "    def delta_history(",
        "    write_lock = None\n\n"
        "    @cache  # noqa: B019 - one Statements per dialect, kept for the process\n"
        "    def delta_history(",
    ),
    # test_isolation.py
    Mutation(
        "test_isolation.py::test_no_connection_can_be_opened",
        "tests/unit/conftest.py",
        '    (sqlalchemy, "create_engine"),\n',
        "",
    ),
    Mutation(
        "test_isolation.py::test_unit_modules_import_no_database_driver",
        "tests/unit/replay.py",
        "import json\n",
        "import json\n\nimport asyncpg  # noqa: F401\n",
    ),
]


def run(mutation: Mutation) -> tuple[str, str]:
    """Apply, test, restore: ("fails", its first error line) is the expected outcome."""
    path = ROOT / mutation.file
    original = path.read_text()
    if original.count(mutation.old) != 1:
        return "gone", f"{mutation.old!r} is not in {mutation.file} exactly once"
    try:
        path.write_text(original.replace(mutation.old, mutation.new))
        out = subprocess.run(
            [*PYTEST, f"tests/unit/{mutation.test}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(original)
    if out.returncode == 0:
        return "PASSES", "the test passed with the mutation applied"
    lines = [line for line in out.stdout.splitlines() if line.startswith("E ")]
    return "fails", (lines[0][1:].strip() if lines else out.stdout.strip().splitlines()[-1])


def main(patterns: list[str]) -> int:
    survived = 0
    for mutation in MUTATIONS:
        if patterns and not any(p in mutation.test for p in patterns):
            continue
        outcome, detail = run(mutation)
        survived += outcome != "fails"
        print(f"{outcome:6}  {mutation.test}\n        {detail[:150]}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
