"""The scaled-out delivery queue: messages in Azure Storage Queues, each job's row in Cosmos DB.

Several Herald instances share one set of rows (container `deliveries`: one document per
delivery job, with its status, attempts, reasons, sent version and the channel's remote id —
what edits need here, and what delivery/ledger_cosmos.py's ledger reads for the counters and the
report) and one queue (delivery/queue_azure.py: messages that name a job; receiving one is
taking its lease). This module writes both; the ledger only reads the rows.

**The token rule.** Every outstanding ledger row names the one message that carries it (`tok`);
a message whose token is not its row's, or whose row is no longer outstanding, is stale and is
deleted when received. Whenever a job needs a (new) message, the message is enqueued *first*
and the ledger written *after*:

- `add_page` enqueues each queued delivery's message, then inserts its row (insert-or-ignore on
  a deterministic id derived from notification, user, channel and target). A replayed page (a
  crash before the cursor was saved, or two instances resuming one notification) finds the rows
  there: its new messages carry tokens no row has and are dropped on receipt. A crash between
  enqueue and insert leaves a message without a row, dropped once it is old. So no row is
  ever outstanding without a message, and no recovery sweep is needed: there is nothing for one
  to find.
- a retry, a deferral (quiet hours), a release for an edit (the version changed in flight,
  or `finish_expansion`) enqueues a fresh message with the delay, then writes the row (new
  token), then deletes the old message. Fresh messages also start their dequeue count at 1,
  so the count measures only receives that were never settled: crashes and lost leases.
- a final outcome (delivered, skipped, failed, dead) writes the row, then deletes the message.

**Leases.** `lease` receives messages with the lease as visibility timeout (batches of 32),
reads their rows, drops stale ones, re-hides messages not due yet (a wait longer than the
queue's 7-day maximum is served in hops) and briefly re-hides a message whose row is still
being written; a message received more than `max_dequeues` times is moved to the poison
queue and its delivery counted `failed` (reason `poison`). The pop receipts of the leases this
process holds are kept in memory: `settle` and `release` need them. After a crash nobody has
them, and none are needed: the visibility timeouts run out and the messages come back (so
`recover` at start-up has nothing of a previous process to release; it releases this queue's
own leases). A delivery whose send went out but whose settlement was not written is sent again
then: at-least-once, at most once more per crash.

**Order and polling.** Messages become receivable at their due time and the queue hands them
out roughly oldest first; each batch is ordered by priority and fair tag (delivery/fairness.py).
A queue cannot skip a backlogged lane the way the SQLite lease does, so `exclude_lanes` is not
applied here (`skips_lanes` is False): the worker gives a received job of a lane it already
holds enough of back to the queue, due when the lane's budget reaches it (a fresh message, so
waiting never counts towards poison). `next_due` reads the
ledger: the earliest outstanding due time, and for jobs this process holds, when their lease
ends. Jobs held by other instances look due; the worker then polls the queue at a short interval.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from delivery.outbox import DeliveryJob, NewDelivery, Settlement
from delivery.queue_azure import AzureDeliveryQueue, QueuedMessage
from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.cosmos_notifications import CosmosNotificationStore, inbox_id

__all__ = ["AzureStorageDeliveryQueue", "job_id"]

log = logging.getLogger(__name__)

_OUTSTANDING: Final = ("queued", "retrying")
_FINAL: Final = frozenset({"delivered", "skipped", "failed", "dead"})
_ID_BITS: Final = 53  # exact as a JSON number (Cosmos DB compares numbers as doubles)
_ORPHAN_AFTER: Final = 60.0
"""A message whose row is missing this long after it was sent belongs to a failed insert."""
_WAIT_FOR_ROW: Final = 1.0
"""How long a message received before its row was written is hidden again."""
_TOKEN_GRACE: Final = 30.0
"""A message whose token the row does not hold yet is waited for this long after it was sent:
a re-queue sends the new message before it writes the new token, and another instance may
receive the message in between. Older ones are stale (superseded, or their write failed)."""
_MAX_EARLY_RECEIVES: Final = 60
"""Without a send time (the queue did not say), a message is waited for this many receives."""
_MARK_TTL: Final = 7 * 86400
"""Audience marks (who an expansion planned) are needed until it finishes; then they expire."""
_DUE_SLACK: Final = 0.5
"""Whole-second visibility timeouts: a message may surface this early."""


def job_id(notification_id: str, user_id: str, channel: str, target: str, probe: int = 0) -> int:
    """The deterministic id of a delivery (53 bits of SHA-256); `probe` > 0 only after a
    different delivery was found at the id (a hash collision)."""
    digest = hashlib.sha256(
        "\x1f".join((notification_id, user_id, channel, target, str(probe))).encode()
    ).digest()
    return max(1, int.from_bytes(digest[:8], "big") >> (64 - _ID_BITS))


@dataclass(frozen=True, slots=True)
class _Lease:
    message: QueuedMessage
    until: float
    due_at: float
    sent_version: int
    notification_id: str


def _token() -> str:
    return uuid.uuid4().hex[:16]


def _job(doc: dict[str, Any]) -> DeliveryJob:
    return DeliveryJob(
        id=int(doc["jobId"]),
        notification_id=doc["notificationId"],
        user_id=doc["userId"],
        channel=doc["channel"],
        target=doc["target"],
        attempts=int(doc["attempts"]),
        sent_version=int(doc["sentVersion"]),
        remote_id=doc.get("remoteId"),
        lane=doc.get("lane", ""),
        priority=int(doc.get("priority", 1)),
        tag=float(doc.get("tag", 0.0)),
    )


def _parse(content: str) -> tuple[int, str] | None:
    job, _, token = content.partition(":")
    return (int(job), token) if job.isdigit() and token else None


class AzureStorageDeliveryQueue:
    """The delivery queue for several instances: messages on Azure Storage Queues (through
    delivery/queue_azure.py's `AzureDeliveryQueue`), each job's row in Cosmos DB (which
    delivery/ledger_cosmos.py reads)."""

    skips_lanes = False

    def __init__(
        self,
        db: CosmosDatabase,
        queue: AzureDeliveryQueue,
        notifications: CosmosNotificationStore,
        *,
        history_seconds: float,
        max_dequeues: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._queue = queue
        self._notifications = notifications
        self._ttl = max(1, int(history_seconds))
        self._max_dequeues = max_dequeues
        self._clock = clock
        self._leases: dict[int, _Lease] = {}

    # --- expansion --------------------------------------------------------------------------

    async def add_page(
        self,
        notification_id: str,
        version: int,
        deliveries: Sequence[NewDelivery],
        inbox_user_ids: Sequence[str],
        cursor: str | None,
        marks: Sequence[str] = (),
    ) -> int:
        now = self._clock()
        # Earliest due first, so the queue hands them out in that order as far as it can.
        ordered = sorted(deliveries, key=lambda d: d.due_at)
        created = await bounded(self._insert(notification_id, d, now) for d in ordered)
        await bounded(
            self._db.create(
                "inbox",
                {
                    "id": inbox_id(user_id, notification_id),
                    "userId": user_id,
                    "notificationId": notification_id,
                    "createdAt": now,
                    "readAt": None,
                    "ttl": self._ttl,
                },
            )
            for user_id in dict.fromkeys(inbox_user_ids)
        )
        # After the rows: a mark means the person's deliveries exist (a crash in between
        # replays the page, whose rows are then found).
        marks_container = self._db.container("audienceMarks")
        await bounded(
            marks_container.upsert_item(
                {
                    "id": doc_id(notification_id, user_id),
                    "notificationId": notification_id,
                    "userId": user_id,
                    "version": version,
                    "ttl": _MARK_TTL,
                }
            )
            for user_id in dict.fromkeys(marks)
        )
        await self._notifications.update_if_version(
            notification_id, version, {"expandCursor": cursor}
        )
        return sum(created)

    async def planned(
        self, notification_id: str, version: int, user_ids: Sequence[str]
    ) -> set[str]:
        rows = await self._db.query_in(
            "audienceMarks",
            "SELECT c.userId FROM c WHERE c.notificationId = @n AND c.version >= @v"
            " AND ARRAY_CONTAINS(@keys, c.userId)",
            user_ids,
            {"@n": notification_id, "@v": version},
        )
        return {r["userId"] for r in rows}

    async def _insert(self, notification_id: str, d: NewDelivery, now: float) -> bool:
        """Enqueue (if queued), then insert the row; False if the delivery existed."""
        key = (notification_id, d.user_id, d.channel, d.target)
        probe = 0
        while True:
            ident = job_id(*key, probe)
            token = None
            if d.status == "queued":
                token = _token()
                await self._queue.send(f"{ident}:{token}", d.due_at - now)
            created = await self._db.create(
                "deliveries",
                {
                    "id": str(ident),
                    "jobId": ident,
                    "notificationId": notification_id,
                    "userId": d.user_id,
                    "channel": d.channel,
                    "target": d.target,
                    "status": d.status,
                    "reason": d.reason,
                    "dueAt": d.due_at,
                    "attempts": 0,
                    "sentVersion": 0,
                    "remoteId": None,
                    "lastError": None,
                    "tok": token,
                    "updatedAt": now,
                    "ttl": self._ttl,
                    "lane": d.lane,
                    "priority": d.priority,
                    "tag": d.tag,
                },
            )
            if created is not None:
                return True
            existing = await self._db.read("deliveries", str(ident), str(ident))
            if existing is None:
                continue  # removed meanwhile (expired): insert again
            if (
                existing["notificationId"], existing["userId"], existing["channel"],
                existing["target"],
            ) == key:
                return False  # a replay: the row is there, our message is stale
            probe += 1  # a different delivery hashed to this id

    async def finish_expansion(self, notification_id: str, version: int) -> int:
        rows = await self._db.query(
            "deliveries",
            "SELECT * FROM c WHERE c.notificationId = @n AND c.status = 'delivered'"
            " AND c.sentVersion < @v",
            {"@n": notification_id, "@v": version},
        )
        now = self._clock()
        # An edit is a new send: it gets the whole retry budget.
        requeued = await bounded(
            self._requeue(row, now, attempts=0, reason=None, error=None, etag=row["_etag"])
            for row in rows
        )
        await self._notifications.update_if_version(
            # The cursor stays: it holds what each part of the audience found (the status
            # shows it); a new version starts from none. Marks expire by their TTL.
            notification_id, version, {"expandedVersion": version}
        )
        return sum(requeued)

    # --- recalls: delivered jobs queued again for retraction --------------------------------

    async def retract(self, notification_id: str) -> int:
        rows = await self._db.query(
            "deliveries",
            "SELECT * FROM c WHERE c.notificationId = @n AND c.status = 'delivered'"
            " AND IS_STRING(c.remoteId)",
            {"@n": notification_id},
        )
        now = self._clock()
        requeued = await bounded(
            self._requeue(row, now, attempts=0, reason=None, error=None, etag=row["_etag"])
            for row in rows
        )
        return sum(requeued)

    async def _requeue(
        self,
        row: dict[str, Any],
        due_at: float,
        *,
        status: str = "queued",
        attempts: int | None = None,
        increment: int = 0,
        reason: str | None,
        error: str | None,
        etag: str | None = None,
        sent_version: int | None = None,
        remote_id: str | None = None,
        old: QueuedMessage | None = None,
    ) -> bool:
        """Give an outstanding job a fresh message: enqueue, write the row, drop the old one."""
        from azure.core import MatchConditions
        from azure.cosmos.exceptions import CosmosAccessConditionFailedError

        token = _token()
        await self._queue.send(f"{row['jobId']}:{token}", due_at - self._clock())
        operations: list[dict[str, Any]] = [
            {"op": "set", "path": "/status", "value": status},
            {"op": "set", "path": "/dueAt", "value": due_at},
            {"op": "set", "path": "/reason", "value": reason},
            {"op": "set", "path": "/lastError", "value": error},
            {"op": "set", "path": "/tok", "value": token},
            {"op": "set", "path": "/updatedAt", "value": self._clock()},
        ]
        if attempts is not None:
            operations.append({"op": "set", "path": "/attempts", "value": attempts})
        elif increment:
            operations.append({"op": "incr", "path": "/attempts", "value": increment})
        if sent_version is not None:
            operations.append({"op": "set", "path": "/sentVersion", "value": sent_version})
        if remote_id is not None:
            operations.append({"op": "set", "path": "/remoteId", "value": remote_id})
        options: dict[str, Any] = {}
        if etag is not None:
            options = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            await self._patch(str(row["jobId"]), operations, **options)
        except CosmosAccessConditionFailedError:
            return False  # changed meanwhile (another instance requeued it): our message is stale
        if old is not None:
            await self._queue.delete(old.id, old.pop_receipt)
        return True

    async def _patch(self, ident: str, operations: list[dict[str, Any]], **options: Any) -> Any:
        # A patch takes at most 10 operations; none here has more than 9.
        return await self._db.container("deliveries").patch_item(
            ident, partition_key=ident, patch_operations=operations, **options
        )

    # --- leasing ----------------------------------------------------------------------------

    def _held(self, now: float) -> dict[int, _Lease]:
        """Leases this process holds that have not run out."""
        for ident in [i for i, lease in self._leases.items() if lease.until <= now]:
            del self._leases[ident]
        return self._leases

    async def lease(
        self, limit: int, lease_seconds: float, exclude_lanes: Collection[str] = ()
    ) -> list[DeliveryJob]:
        if limit <= 0:
            return []
        jobs: list[tuple[DeliveryJob, _Lease]] = []
        rounds = 0
        while len(jobs) < limit and rounds < limit // 32 + 8:
            rounds += 1
            # Small requests still take a whole batch: the earliest due of it are handed out.
            ask = 32 if limit < 32 else min(32, limit - len(jobs))
            messages = await self._queue.receive(ask, lease_seconds)
            if not messages:
                break
            received_at = self._clock()
            until = received_at + max(1.0, float(int(lease_seconds + 0.999999)))
            taken = await bounded(self._check(m, received_at, until) for m in messages)
            jobs.extend(t for t in taken if t is not None)
        jobs.sort(key=lambda pair: (pair[0].priority, pair[0].tag, pair[1].due_at, pair[0].id))
        for _, lease in jobs[limit:]:
            await self._queue.hide(lease.message.id, lease.message.pop_receipt, 0)
        kept = jobs[:limit]
        for job, lease in kept:
            self._leases[job.id] = lease
        return [job for job, _ in kept]

    async def _check(
        self, message: QueuedMessage, now: float, until: float
    ) -> tuple[DeliveryJob, _Lease] | None:
        """The job a received message carries, or None after dealing with a stale one."""
        parsed = _parse(message.content)
        if parsed is None:
            log.warning("dropping a malformed message from queue %s", self._queue.name)
            await self._queue.to_poison(message)
            return None
        ident, token = parsed
        row = await self._db.read("deliveries", str(ident), str(ident))
        if row is None:
            await self._early_or_stale(message, now, _ORPHAN_AFTER)  # stale: its insert failed
            return None
        if row.get("tok") != token:
            await self._early_or_stale(message, now, _TOKEN_GRACE)
            return None
        if row["status"] not in _OUTSTANDING:
            await self._queue.delete(message.id, message.pop_receipt)  # settled meanwhile
            return None
        due = float(row["dueAt"])
        if due > now + _DUE_SLACK:
            # Not due yet: a wait beyond the queue's 7-day limit, served in hops.
            await self._requeue(
                row, due, status=row["status"], reason=row.get("reason"),
                error=row.get("lastError"), old=message,
            )
            return None
        if message.dequeue_count > self._max_dequeues:
            log.error(
                "delivery %d was taken %d times and never settled: moved to %s",
                ident, message.dequeue_count, self._queue.poison_name,
            )
            await self._patch(
                str(ident),
                [
                    {"op": "set", "path": "/status", "value": "failed"},
                    {"op": "set", "path": "/reason", "value": "poison"},
                    {"op": "set", "path": "/tok", "value": None},
                    {"op": "set", "path": "/updatedAt", "value": now},
                ],
            )
            await self._queue.to_poison(message)
            return None
        lease = _Lease(message, until, due, int(row["sentVersion"]), row["notificationId"])
        return _job(row), lease

    async def _early_or_stale(self, message: QueuedMessage, now: float, grace: float) -> None:
        """A message its row does not (yet) expect: sent just before the row was written, it is
        hidden until the write lands; past `grace` it is stale and deleted. Deleting it early
        would lose the job: the row would then wait for a message that no longer exists."""
        if message.inserted_on is not None:
            early = now - message.inserted_on.timestamp() <= grace
        else:
            early = message.dequeue_count <= _MAX_EARLY_RECEIVES
        if early:
            await self._queue.hide(message.id, message.pop_receipt, _WAIT_FOR_ROW)
        else:
            await self._queue.delete(message.id, message.pop_receipt)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        # The versions a delivered job is compared with, read once per batch.
        wanted = {
            self._leases[s.job_id].notification_id
            for s in settlements
            if s.status == "delivered" and s.job_id in self._leases
        }
        current = await self._notifications.get_many(list(wanted)) if wanted else {}
        versions = {nid: record.version for nid, record in current.items()}
        await bounded(self._settle_one(s, versions) for s in settlements)

    async def _settle_one(self, s: Settlement, versions: dict[str, int]) -> None:
        lease = self._leases.pop(s.job_id, None)
        message = lease.message if lease is not None else None
        sent = s.sent_version if s.sent_version is not None else (
            lease.sent_version if lease is not None else None
        )
        current = versions.get(lease.notification_id) if lease is not None else None
        if s.status == "delivered" and sent is not None and current is not None and sent < current:
            # The content changed while it was in flight: queue it again at once for an edit,
            # with a fresh retry budget.
            await self._requeue(
                {"jobId": s.job_id}, self._clock(), attempts=0, reason=s.reason, error=s.error,
                sent_version=sent, remote_id=s.remote_id, old=message,
            )
            return
        if s.status in _FINAL:
            operations: list[dict[str, Any]] = [
                {"op": "set", "path": "/status", "value": s.status},
                {"op": "set", "path": "/reason", "value": s.reason},
                {"op": "set", "path": "/dueAt", "value": s.due_at},
                {"op": "set", "path": "/lastError", "value": s.error},
                {"op": "set", "path": "/tok", "value": None},
                {"op": "set", "path": "/updatedAt", "value": self._clock()},
                ]
            if s.count_attempt:
                operations.append({"op": "incr", "path": "/attempts", "value": 1})
            if s.sent_version is not None:
                operations.append({"op": "set", "path": "/sentVersion", "value": s.sent_version})
            if s.remote_id is not None:
                operations.append({"op": "set", "path": "/remoteId", "value": s.remote_id})
            await self._patch(str(s.job_id), operations)
            if message is not None:
                await self._queue.delete(message.id, message.pop_receipt)
            return
        await self._requeue(
            {"jobId": s.job_id}, s.due_at, status=s.status,
            increment=1 if s.count_attempt else 0, reason=s.reason, error=s.error,
            sent_version=s.sent_version, remote_id=s.remote_id, old=message,
        )

    async def release(self, job_ids: Sequence[int]) -> None:
        leases = [self._leases.pop(i) for i in job_ids if i in self._leases]
        await bounded(
            self._queue.hide(lease.message.id, lease.message.pop_receipt, 0) for lease in leases
        )

    async def recover(self) -> int:
        held = self._held(self._clock())
        count = len(held)
        await self.release(list(held))
        return count

    async def lane_tags(self) -> dict[str, float]:
        return {}  # the queue hands jobs out in its own order: tags only order a received batch

    async def next_due(self, exclude_lanes: Collection[str] = ()) -> float | None:
        now = self._clock()
        held = self._held(now)
        best: float | None = None
        async for page in self._db.pages(
            "deliveries",
            "SELECT c.jobId, c.dueAt FROM c WHERE c.status IN ('queued', 'retrying')"
            " ORDER BY c.dueAt",
            page_size=100,
        ):
            for row in page:
                due = float(row["dueAt"])
                if best is not None and due >= best:
                    return best
                lease = held.get(int(row["jobId"]))
                effective = max(due, lease.until) if lease is not None else due
                best = effective if best is None else min(best, effective)
                if lease is None:
                    return best
        return best

    # --- lifecycle (the application opens the database; the Storage queue is this one's) ----

    async def open(self) -> None:
        await self._queue.open()

    async def close(self) -> None:
        self._leases.clear()
        await self._queue.close()

    async def check(self) -> bool:
        return await self._queue.check()


