"""The durable outbox: one Delivery job per (notification, user, channel, target).

Two Protocols over the same delivery rows: the queue the workers lease from (`DeliveryQueue`:
the router writes it, the worker leases and settles, a recall re-queues through it) and the
ledger the status counters are read from (`DeliveryLedger`: the API, the operator pages,
engagement and /metrics only read it). Each backend implements them as two objects (SQLite:
delivery/outbox_sqlite.py and delivery/ledger_sqlite.py; scaled out: delivery/outbox_azure.py
on Azure Storage Queues with Cosmos DB rows, and delivery/ledger_cosmos.py), so either side can
change without the other. A settlement writes the row the ledger reads, so a delivery
is never "sent but not recorded" in a way that loses it: a worker that
dies mid-send leaves its lease to expire (or be recovered at start-up) and the job is sent again
(at-least-once). Expansion writes a page of deliveries, the matching history entries and the
expansion cursor in one step, so a crash mid-expansion resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "COUNTER_NAMES",
    "DeliveryCounters",
    "DeliveryJob",
    "DeliveryLedger",
    "DeliveryQueue",
    "NewDelivery",
    "ReportRow",
    "Settlement",
    "TimelineBucket",
]

JobStatus = Literal["queued", "retrying", "delivered", "skipped", "failed", "dead"]

# Status in the outbox → counter name in the API (DESIGN: queued, delivered, retrying,
# skipped, failed, deadTargets).
COUNTER_NAMES: dict[str, str] = {
    "queued": "queued",
    "retrying": "retrying",
    "delivered": "delivered",
    "skipped": "skipped",
    "failed": "failed",
    "dead": "deadTargets",
}


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery the router decided on: queued (possibly for later) or skipped with a reason."""

    user_id: str
    channel: str
    target: str
    status: Literal["queued", "skipped"]
    due_at: float
    reason: str | None = None
    lane: str = ""
    """The rate-limit lane its sends queue in (delivery/channel.py Target); "" for none."""
    priority: int = 1
    """0 high, 1 normal, 2 low, 3 very low (delivery/fairness.py): lower goes first."""
    tag: float = 0.0
    """Its fair-queueing start tag within the lane: lower goes first among equal priority."""


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A leased delivery. `remote_id` is the channel's id of what was already sent (for edits)."""

    id: int
    notification_id: str
    user_id: str
    channel: str
    target: str
    attempts: int
    sent_version: int
    remote_id: str | None
    lane: str = ""
    priority: int = 1
    tag: float = 0.0


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of one leased job."""

    job_id: int
    status: Literal["queued", "delivered", "retrying", "skipped", "failed", "dead"]
    due_at: float
    reason: str | None = None
    sent_version: int | None = None
    remote_id: str | None = None
    error: str | None = None
    count_attempt: bool = True


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One delivery as the per-recipient report shows it (`status` uses the counter names)."""

    id: int
    user_id: str
    channel: str
    target: str
    status: str
    reason: str | None
    attempts: int
    last_error: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class TimelineBucket:
    """Deliveries of one notification that reached a final state within one time bucket."""

    start: float
    """Epoch seconds, a multiple of the bucket size."""
    delivered: int = 0
    skipped: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(slots=True)
class DeliveryCounters:
    """Counters of one notification, in total and per channel, plus skip/failure reasons, and
    when its next delivery is due."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES.values(), 0))
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    """`{status}:{reason}` → how many: why deliveries were skipped, failed or dead, and how
    delivered ones got there when that is worth saying (`delivered:created`)."""
    next_due: float | None = None
    """The earliest due time (epoch seconds) of its queued and retrying deliveries; None when
    none is outstanding. In the past when one is due now (or being sent); in the future when
    one waits: a retry's backoff, or quiet hours deferring it to the end of the window."""
    lanes: dict[str, int] = field(default_factory=dict)
    """Outstanding deliveries by rate-limit lane (paced lanes only): with the worker's view of
    which lanes are out of budget, the status says why a notification is waiting."""

    @property
    def outstanding(self) -> int:
        return self.totals["queued"] + self.totals["retrying"]

    def add(
        self, *, channel: str, status: str, reason: str | None, lane: str, n: int, due: float
    ) -> None:
        """Count `n` deliveries of one (channel, status, reason, lane) group, the earliest of
        them due at `due`: every ledger folds its rows in here, so the counters mean the same
        on each backend however it groups them."""
        name = COUNTER_NAMES[status]
        if status in ("queued", "retrying"):
            if self.next_due is None or due < self.next_due:
                self.next_due = due
            if lane:
                self.lanes[lane] = self.lanes.get(lane, 0) + n
        self.totals[name] += n
        if channel:
            per = self.channels.setdefault(channel, dict.fromkeys(COUNTER_NAMES.values(), 0))
            per[name] += n
        # Delivered rows carry a reason only when it says how (delivery/reach.py).
        if reason and status in ("skipped", "failed", "dead", "delivered"):
            key = f"{status}:{reason}"
            self.reasons[key] = self.reasons.get(key, 0) + n


class DeliveryQueue(Protocol):
    """The jobs to send: written by the router's expansion, leased and settled by the worker.
    Embedded: SQLite; scaled out: Azure Storage Queues."""

    skips_lanes: bool
    """Whether `lease` can leave excluded lanes' backlog in the store. When it cannot, the
    worker gives jobs of a lane it already holds enough of back, due when their turn comes."""

    async def add_page(
        self,
        notification_id: str,
        version: int,
        deliveries: Sequence[NewDelivery],
        inbox_user_ids: Sequence[str],
        cursor: str | None,
        marks: Sequence[str] = (),
    ) -> int:
        """Insert deliveries (ignoring ones that exist) and history entries, and save the
        expansion cursor, atomically. Returns how many deliveries were new.

        `marks` are the people this page planned, remembered for `version` (see `planned`):
        written with the deliveries, never before them, so a mark always means planned."""
        ...

    async def planned(
        self, notification_id: str, version: int, user_ids: Sequence[str]
    ) -> set[str]:
        """Which of `user_ids` a page of this version's expansion marked already: a person
        named by two parts of an audience (two groups, a group and a team) is planned once,
        even when their targets changed in between (a Teams chat created meanwhile)."""
        ...

    async def finish_expansion(self, notification_id: str, version: int) -> int:
        """Mark `version` expanded and queue already delivered jobs of older versions for an
        update (edit in place). Returns how many were queued for update."""
        ...

    async def lease(
        self, limit: int, lease_seconds: float, exclude_lanes: Collection[str] = ()
    ) -> list[DeliveryJob]:
        """Take up to `limit` due jobs for `lease_seconds`: highest priority, then lowest fair
        tag, then earliest due first, as far as the backend can order them. `exclude_lanes`
        names lanes the worker already holds enough of: a backend that can skip them leaves
        their backlog in the store, urgent jobs excepted (SQLite); a queue that cannot (Azure
        Storage) hands them out anyway and the worker's scheduler holds them without a slot."""
        ...

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Record outcomes; a job delivered with an outdated version is queued again."""
        ...

    async def release(self, job_ids: Sequence[int]) -> None:
        """Give back leased jobs that were never attempted."""
        ...

    async def recover(self) -> int:
        """Release leases held by a previous run of this instance (start-up)."""
        ...

    async def next_due(self, exclude_lanes: Collection[str] = ()) -> float | None:
        """When the earliest queued job (of the lanes not excluded) becomes due (epoch
        seconds), or None."""
        ...

    async def lane_tags(self) -> dict[str, float]:
        """The lowest fair tag still outstanding per lane: where the fair clocks of a restarted
        process resume, so new notifications neither jump ahead of an old backlog nor wait
        behind all of it. Empty where the backend does not order by tags."""
        ...

    async def retract(self, notification_id: str) -> int:
        """Queue the notification's delivered jobs that carry a `remote_id` (a message the
        channel can take back) again, at once, for the worker to retract (a recall). Returns
        how many."""
        ...


class DeliveryLedger(Protocol):
    """What became of each delivery, for those who read it (status, report, operator pages,
    read receipts, /metrics). Reads only, kept apart from `DeliveryQueue` so readers depend on
    no lease or settlement."""

    async def counters(self, notification_id: str) -> DeliveryCounters:
        """The notification's counters and the due time of its next outstanding delivery."""
        ...

    async def depth(self) -> dict[tuple[str, str, str], int]:
        """Deliveries waiting, by (channel, "queued" | "retrying", lane), for /metrics."""
        ...

    async def report(self, notification_id: str, *, after: int, limit: int) -> list[ReportRow]:
        """Deliveries of a notification in id order after `after`: the report is streamed a
        page at a time, so it costs the same memory for 50 recipients or 50,000."""
        ...

    async def sent_upto(self, user_id: str, target: str, remote_id: str) -> list[str]:
        """The notifications whose message the user has in `target` up to and including the
        one the channel knows as `remote_id` (sent before it, or it): what a Teams read
        receipt ("read up to message X") covers. Empty when no delivery sent `remote_id`."""
        ...

    async def timeline(
        self, notification_id: str, *, bucket_seconds: float
    ) -> list[TimelineBucket]:
        """How many of the notification's deliveries became delivered, skipped, failed or dead
        in each `bucket_seconds` window (by the time they were last settled), oldest first;
        windows with none are left out. Feeds the operator page's delivery-rate chart, so it
        is one grouped query, never a scan the size of the audience into memory."""
        ...
