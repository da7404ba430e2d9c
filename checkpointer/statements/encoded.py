"""Statements of the incremental blob encoding (`checkpointer.incremental`), used only
by a saver created with `blob_encoding="incremental"` and by `decode_blobs`.

`EncodedStatements` is `Statements` with one statement changed: blob garbage collection
keeps the base of every delta a surviving checkpoint references (a base row is named by
the delta's `type`, `incremental/delta:<version>`), so `prune`, sweeps and
`delete_for_runs` never delete a base while something still needs it. Savers without
the option keep the plain statement: they pay nothing for this.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    delete,
    except_,
    func,
    literal,
    select,
    true,
    tuple_,
)
from sqlalchemy import update as update_
from sqlalchemy.sql.expression import Delete, Insert, Update

from .. import incremental, schema
from ..rows import (
    AFTER_CHANNEL,
    AFTER_NS,
    AFTER_THREAD,
    AFTER_VERSION,
    BASES,
    CHECKPOINT_NS,
    ENCODED,
    LIMIT,
    NEW_BLOB,
    NEW_TYPE,
    SETTING_NAME,
    SETTING_VALUE,
    THREAD_ID,
    THREAD_IDS,
)
from .common import Family, blobs, cp

settings = schema.checkpointer_settings


class Encoded(Family):
    """Settings, base lookups and the decode-back of encoded rows."""

    @cached_property
    def get_setting(self) -> Select[Any]:
        return select(settings.c.value).where(settings.c.name == bindparam(SETTING_NAME))

    @cached_property
    def put_setting(self) -> Insert:
        """Record a setting; a row already there stays (the value is the same)."""
        d = self.dialect
        insert = d.insert(settings).values(
            name=bindparam(SETTING_NAME, type_=Text), value=bindparam(SETTING_VALUE, type_=Text)
        )
        return d.insert_or_ignore(settings, insert)

    @cached_property
    def delete_setting(self) -> Delete:
        return delete(settings).where(settings.c.name == bindparam(SETTING_NAME))

    @cached_property
    def blobs_by_version(self) -> Select[Any]:
        """The blob rows of one thread and namespace named by (channel, version) pairs:
        the bases a read's delta rows need and it did not bring."""
        return select(blobs).where(
            blobs.c.thread_id == bindparam(THREAD_ID, type_=Text),
            blobs.c.checkpoint_ns == bindparam(CHECKPOINT_NS, type_=Text),
            tuple_(blobs.c.channel, blobs.c.version).in_(bindparam(BASES, expanding=True)),
        )

    def encoded_blobs(self, after: bool) -> Select[Any]:
        """A batch of encoded rows in key order, after the previous batch's last key."""
        return self._encoded_after if after else self._encoded_first

    def _encoded(self) -> Select[Any]:
        return (
            select(blobs)
            .where(blobs.c.type.like(bindparam(ENCODED, type_=Text)))
            .order_by(blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version)
            .limit(bindparam(LIMIT, type_=Integer))
        )

    @cached_property
    def _encoded_first(self) -> Select[Any]:
        return self._encoded()

    @cached_property
    def _encoded_after(self) -> Select[Any]:
        key = tuple_(blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version)
        after = tuple_(
            bindparam(AFTER_THREAD, type_=Text),
            bindparam(AFTER_NS, type_=Text),
            bindparam(AFTER_CHANNEL, type_=Text),
            bindparam(AFTER_VERSION, type_=Text),
        )
        return self._encoded().where(key > after)

    @cached_property
    def plain_blob(self) -> Update:
        """Rewrite one blob row (executemany) as plain: the serde's type and bytes."""
        return (
            update_(blobs)
            .where(
                blobs.c.thread_id == bindparam("b_" + THREAD_ID, type_=Text),
                blobs.c.checkpoint_ns == bindparam("b_" + CHECKPOINT_NS, type_=Text),
                blobs.c.channel == bindparam("b_channel", type_=Text),
                blobs.c.version == bindparam("b_version", type_=Text),
            )
            .values(type=bindparam(NEW_TYPE, type_=Text), blob=bindparam(NEW_BLOB))
        )


class EncodedGarbage(Family):
    """The garbage collection of blobs that knows about bases."""

    @cached_property
    def delete_unreferenced_blobs(self) -> Delete:
        """Delete the blobs of the threads `thread_ids` that no checkpoint of theirs
        references and that are not the base of a delta one references: blob keys
        EXCEPT the referenced versions EXCEPT those deltas' bases."""
        threads: Any = bindparam(THREAD_IDS, expanding=True)
        versions = self.dialect.channel_versions(cp.c.checkpoint)
        key = (blobs.c.thread_id, blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.version)
        value = self.dialect.version_value(versions, cp.c.checkpoint)
        referenced = (
            select(cp.c.thread_id, cp.c.checkpoint_ns, versions.c.key, cast(value, Text))
            .select_from(cp)
            .join(versions, true())
            .where(cp.c.thread_id.in_(threads))
        )
        delta = blobs.alias("delta")
        bases = select(
            delta.c.thread_id,
            delta.c.checkpoint_ns,
            delta.c.channel,
            func.substr(delta.c.type, literal(len(incremental.DELTA) + 1), type_=Text),
        ).where(
            delta.c.thread_id.in_(threads),
            delta.c.type.like(literal(incremental.DELTA + "%", Text)),
            tuple_(delta.c.thread_id, delta.c.checkpoint_ns, delta.c.channel, delta.c.version).in_(
                referenced
            ),
        )
        stored = select(*key).where(blobs.c.thread_id.in_(threads))
        garbage = except_(stored, referenced, bases)
        return delete(blobs).where(blobs.c.thread_id.in_(threads), tuple_(*key).in_(garbage))
