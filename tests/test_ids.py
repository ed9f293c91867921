"""Task and batch ids: valid UUIDs, version 7, time-ordered, and unique (pure logic)."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.ids import new_id

pytestmark = pytest.mark.database_independent


def test_ids_are_version_7_uuids_that_carry_their_time() -> None:
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(new_id())
    after = time.time_ns() // 1_000_000
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_sort_by_time_and_never_repeat() -> None:
    ids = []
    for _ in range(5):
        ids += [new_id() for _ in range(2000)]
        time.sleep(0.002)  # the next round is in a later millisecond
    assert len(set(ids)) == len(ids)
    rounds = [ids[i : i + 2000] for i in range(0, len(ids), 2000)]
    assert all(max(a) < min(b) for a, b in zip(rounds, rounds[1:], strict=False))
