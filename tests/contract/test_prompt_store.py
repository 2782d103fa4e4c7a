"""PromptStore contract: answers (latest wins, counted per choice) and waiting prompts."""

from __future__ import annotations

import asyncio

from storage.records import PendingPrompt
from tests.contract.conftest import Backend


def _pending(key: str, nid: str, user: str = "u1", at: float = 1.0) -> PendingPrompt:
    return PendingPrompt(key, nid, user, f"question {nid}?", ("Yes", "No"), at)


async def test_latest_answer_wins_and_counts_are_per_choice(backend: Backend) -> None:
    prompts = backend.prompts
    assert await prompts.answer_counts("n1") == {}
    assert await prompts.answer_of("n1", "u1") is None
    await prompts.record_answer("n1", "u1", "Yes", 1.0)
    await prompts.record_answer("n1", "u2", "Yes", 2.0)
    await prompts.record_answer("n1", "u3", "No", 3.0)
    await prompts.record_answer("n2", "u1", "No", 4.0)
    assert await prompts.answer_counts("n1") == {"Yes": 2, "No": 1}
    await prompts.record_answer("n1", "u1", "No", 5.0)
    assert await prompts.answer_of("n1", "u1") == "No"
    assert await prompts.answer_counts("n1") == {"Yes": 1, "No": 2}
    assert await prompts.answer_counts("n2") == {"No": 1}


async def test_concurrent_answers_are_all_counted(backend: Backend) -> None:
    prompts = backend.prompts
    await asyncio.gather(
        *(
            prompts.record_answer("n1", f"u{i}", "Yes" if i % 3 else "No", float(i))
            for i in range(60)
        )
    )
    assert await prompts.answer_counts("n1") == {"Yes": 40, "No": 20}


async def test_pending_prompts_round_trip_oldest_first(backend: Backend) -> None:
    prompts = backend.prompts
    await prompts.queue(_pending("c1", "n2", at=2.0))
    await prompts.queue(_pending("c1", "n1", at=1.0))
    await prompts.queue(_pending("c2", "n3", at=3.0))
    waiting = await prompts.pending("c1")
    assert [p.notification_id for p in waiting] == ["n1", "n2"]
    assert waiting[0] == _pending("c1", "n1", at=1.0)
    assert await prompts.pending("nowhere") == []


async def test_queueing_again_refreshes_the_question_and_keeps_its_place(backend: Backend) -> None:
    prompts = backend.prompts
    await prompts.queue(_pending("c1", "n1", at=1.0))
    await prompts.queue(_pending("c1", "n2", at=2.0))
    await prompts.queue(PendingPrompt("c1", "n1", "u1", "changed?", ("A", "B", "C"), 9.0))
    waiting = await prompts.pending("c1")
    assert [(p.notification_id, p.text, p.choices) for p in waiting] == [
        ("n1", "changed?", ("A", "B", "C")),
        ("n2", "question n2?", ("Yes", "No")),
    ]


async def test_take_newest_removes_the_users_newest_once(backend: Backend) -> None:
    prompts = backend.prompts
    for i, nid in enumerate(("n1", "n2", "n3")):
        await prompts.queue(_pending("c1", nid, at=float(i)))
    await prompts.queue(_pending("c1", "other", user="u2", at=10.0))
    taken = await asyncio.gather(*(prompts.take_newest("c1", "u1") for _ in range(4)))
    assert sorted(p.notification_id for p in taken if p is not None) == ["n1", "n2", "n3"]
    assert taken.count(None) == 1
    assert [p.notification_id for p in await prompts.pending("c1")] == ["other"]


async def test_take_newest_is_newest_first(backend: Backend) -> None:
    prompts = backend.prompts
    await prompts.queue(_pending("c1", "old", at=1.0))
    await prompts.queue(_pending("c1", "new", at=2.0))
    first = await prompts.take_newest("c1", "u1")
    second = await prompts.take_newest("c1", "u1")
    assert (first and first.notification_id, second and second.notification_id) == ("new", "old")
    assert await prompts.take_newest("c1", "u1") is None


async def test_discard_and_clear(backend: Backend) -> None:
    prompts = backend.prompts
    for nid in ("n1", "n2", "n3"):
        await prompts.queue(_pending("c1", nid))
    await prompts.queue(_pending("c2", "n1"))
    assert await prompts.discard("c1", "n2") is True
    assert await prompts.discard("c1", "n2") is False
    assert await prompts.clear("c1") == 2
    assert await prompts.pending("c1") == []
    assert [p.notification_id for p in await prompts.pending("c2")] == ["n1"]
