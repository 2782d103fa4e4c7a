"""Fairness benchmark: single notifications during a broadcast, and many tenants at once.

Usage::

    .venv/bin/python bench/fairness.py [--users N] [--singles K] [--tenants T]
                                       [--tenant-users M] [--part 1|3|all]

Method
------
Everything runs on this host over loopback. The Bot Connector is ``python -m
tests.peers.connector --teams-limits`` in its own process: Teams' limits of 50 requests/s per
tenant and 7/s per conversation (buckets starting full), 429 + Retry-After beyond. Teams users
(channelId ``msteams``, tenant in ``conversation.tenantId`` and ``channelData``) are written into
a fresh SQLite file with Herald's own stores before ``python app.py`` starts on its defaults.
Arrival times are the sink's ``time.monotonic()`` (``POST /_arrivals``: the first accepted send
per conversation), comparable with the driver's clock (CLOCK_MONOTONIC is system-wide).

*Part 1 and 2* (default N = 10,000, K = 20). A broadcast to N users of tenant A (explicit ids,
HERALD_MAX_BODY_BYTES raised to fit them) is posted. From 3 s after it, every 0.5 s the driver
posts one ``urgency: high`` notification to one of K other users of tenant A, and one
notification (normal urgency) to one of K users of tenant B. Each single's latency is its
conversation's first arrival minus the moment just before its POST. Targets: tenant A singles
p99 <= 1 s; tenant B singles p99 <= 300 ms. The comparison measured in the same run is what
first-in-first-out delivery would have given: the time the broadcast still needed when each
single was posted (its last arrival minus the single's POST). The broadcast's share of tenant
A's allowed rate is ``accepted_A / (50 + 50 * (lastAccept_A - firstAccept_A))`` where
``accepted_A`` counts every send to tenant A in that window (the singles use the budget too):
target >= 98 %.

*Part 3* (default T = 40 tenants x M = 500 users). One ``{"all": true}`` notification; the
share of the allowed aggregate rate is ``accepted / (T * (50 + 50 * span))`` with ``span`` the
first to last accepted send: target >= 99 %. The comparison measured in the same run: the
same broadcast again (a new id, same data, same Herald) to a sink without limits started on the
same port, i.e. what this process can send at all on this machine; the line "achieved /
min(allowed, without limits)" says how much of what was possible the scheduler used.

The unthrottled rate (part 4 of the issue) is bench/broadcast.py's; run it alongside.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from botbuilder.schema import Activity  # noqa: E402

from bench.broadcast import (  # noqa: E402
    API_KEY,
    BOT_ID,
    BenchError,
    Child,
    CpuMeter,
    _free_port,
    _json,
    _ms,
    _verdict,
    peak_rss_mib,
    seeding_stores,
    start_herald,
    start_sink,
)
from proactive.identity import stored_reference, user_key  # noqa: E402
from storage.records import UserRecord  # noqa: E402

TENANT_RATE = 50.0
URGENT_TARGET = 1.0
OTHER_TENANT_TARGET = 0.3
BROADCAST_SHARE_TARGET = 0.98
AGGREGATE_SHARE_TARGET = 0.99
STALL_SECONDS = 60.0
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True, slots=True)
class Seeded:
    user_id: str
    conversation_id: str
    tenant: str


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    broken: bool = False


def _activity(index: int, tenant: str, service_url: str) -> dict[str, Any]:
    user = {"id": f"29:1{uuid.uuid4().hex}", "name": f"User {index}",
            "aadObjectId": str(uuid.uuid4())}
    bot = {"id": f"28:{BOT_ID}", "name": "Herald"}
    return {
        "type": "conversationUpdate",
        "id": f"seed-{tenant}-{index}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "from": user,
        "recipient": bot,
        "conversation": {"id": f"a:1{uuid.uuid4().hex}", "conversationType": "personal",
                         "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}},
        "membersAdded": [{"id": bot["id"], "name": "Herald"}, {"id": user["id"], "name": "x"}],
        "locale": "en-US",
    }


async def seed(db_path: Path, tenants: dict[str, int], service_url: str) -> list[Seeded]:
    """Users of each tenant and their references, with Herald's own stores (not fsynced one
    by one: Herald reopens the file with its normal settings)."""
    stores = seeding_stores(db_path, synchronous="OFF")
    await stores.open()
    seeded: list[Seeded] = []
    try:
        users, conversations = stores.users, stores.conversations
        for tenant, count in tenants.items():
            for index in range(count):
                activity = Activity().deserialize(_activity(index, tenant, service_url))
                key = user_key(activity)
                if key is None:
                    raise BenchError("seed activity has no user")
                reference = stored_reference(activity, key)
                await users.upsert_user(
                    UserRecord(user_id=key, channel_id="msteams", tenant_id=tenant)
                )
                await conversations.upsert(reference)
                seeded.append(Seeded(key, reference.conversation_id, tenant))
    finally:
        await stores.close()
    return seeded


def _line(label: str, value: str) -> str:
    return f"  {label:<52}{value:>28}"


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _post(http: aiohttp.ClientSession, url: str, event: dict[str, Any]) -> float:
    started = time.monotonic()
    async with http.post(url + "/api/notifications", json=event, headers=AUTH) as response:
        if response.status != 202:
            raise BenchError(f"POST answered {response.status}: {await response.text()}")
    return started


async def _arrivals(
    http: aiohttp.ClientSession, sink_url: str, conversations: Sequence[str]
) -> dict[str, float | None]:
    data = await _json(http, "POST", sink_url + "/_arrivals",
                       json={"conversations": list(conversations)})
    return {c: (float(v) if v is not None else None) for c, v in data.items()}


async def _wait_accepted(
    http: aiohttp.ClientSession, sink_url: str, herald: Child, count: int
) -> dict[str, Any]:
    seen, progress_at = -1, time.monotonic()
    while True:
        stats = await _json(http, "GET", sink_url + "/_stats")
        accepted = int(stats["accepted"])
        if accepted >= count:
            return dict(stats)
        if accepted != seen:
            seen, progress_at = accepted, time.monotonic()
        elif time.monotonic() - progress_at > STALL_SECONDS:
            raise BenchError(f"stalled at {accepted:,} of {count:,} sends")
        if herald.process.returncode is not None:
            raise BenchError(f"Herald died:\n{herald.tail()}")
        await asyncio.sleep(0.05)


async def part_singles(n: int, k: int, outcome: Outcome, workdir: Path) -> None:
    async with aiohttp.ClientSession(trust_env=False) as http:
        sink, sink_url = await start_sink(
            ["-m", "tests.peers.connector", "--port", "0", "--quiet", "--teams-limits"],
            workdir, "connector",
        )
        herald: Child | None = None
        try:
            seeded = await seed(
                workdir / "herald.db", {"tenant-a": n + k, "tenant-b": k}, sink_url
            )
            broadcast_users = [s for s in seeded if s.tenant == "tenant-a"][:n]
            a_singles = [s for s in seeded if s.tenant == "tenant-a"][n:]
            b_singles = [s for s in seeded if s.tenant == "tenant-b"]
            herald, url = await start_herald(
                workdir, workdir, http, {"HERALD_MAX_BODY_BYTES": str(64 * n + 65_536)}
            )
            meter = CpuMeter(herald.pid, sink.pid)
            meter.start()
            t_broadcast = await _post(http, url, {
                "id": "broadcast", "type": "hr.policy", "title": "New travel policy",
                "text": "Please read the new travel policy before booking your next trip.",
                "recipients": {"users": [s.user_id for s in broadcast_users]},
            })
            await asyncio.sleep(3.0)
            posted: dict[str, float] = {}
            waiting_seen: set[str | None] = set()
            for i in range(k):
                posted[a_singles[i].conversation_id] = await _post(http, url, {
                    "id": f"urgent-{i}", "type": "it.outage", "title": f"Server {i} is down",
                    "urgency": "high", "recipients": {"users": [a_singles[i].user_id]},
                })
                posted[b_singles[i].conversation_id] = await _post(http, url, {
                    "id": f"other-{i}", "type": "it.note", "title": f"Laptop {i} is ready",
                    "recipients": {"users": [b_singles[i].user_id]},
                })
                status = await _json(http, "GET", url + "/api/notifications/broadcast",
                                     headers=AUTH)
                waiting_seen.add(status.get("waiting"))
                await asyncio.sleep(0.5)
            stats = await _wait_accepted(http, sink_url, herald, n + 2 * k)
            meter.stop()
            rss = peak_rss_mib(herald.pid)
            arrivals = await _arrivals(http, sink_url, list(posted))
            broadcast_last = stats["lastAcceptAt"]
            await herald.stop()
            herald = None
        finally:
            if herald is not None:
                await herald.stop()
            await sink.stop()

    def latencies(group: Sequence[Seeded]) -> tuple[list[float], int]:
        found = [arrivals.get(s.conversation_id) for s in group]
        done = [a - posted[s.conversation_id] for s, a in zip(group, found, strict=True)
                if a is not None]
        return done, len(group) - len(done)

    urgent, urgent_lost = latencies(a_singles)
    other, other_lost = latencies(b_singles)
    fifo = [broadcast_last - posted[s.conversation_id] for s in a_singles]
    tenant_a = stats["perTenant"].get("tenant-a", {})
    accepted_a = int(tenant_a.get("accepted", 0))
    span = broadcast_last - stats["firstAcceptAt"]
    share = accepted_a / (TENANT_RATE + TENANT_RATE * span) if span > 0 else 0.0
    urgent_ok = not urgent_lost and _quantile(urgent, 0.99) <= URGENT_TARGET
    other_ok = not other_lost and _quantile(other, 0.99) <= OTHER_TENANT_TARGET
    share_ok = share >= BROADCAST_SHARE_TARGET
    outcome.broken |= bool(urgent_lost or other_lost)
    outcome.lines += [
        "",
        f"PARTS 1-2 — broadcast to {n:,} users of tenant A; {k} urgent singles to tenant A and "
        f"{k} singles to tenant B posted during it (Teams limits at the sink)",
        _line("broadcast: first send after POST", _ms(stats["firstAcceptAt"] - t_broadcast)),
        _line("broadcast: span first→last send", f"{span:.1f} s"),
        _line("tenant A sends / allowed (50 + 50/s × span)",
             f"{accepted_a:,} / {TENANT_RATE + TENANT_RATE * span:,.0f}"),
        _line("share of tenant A's allowed rate", f"{share * 100:.2f} %"),
        _line("429s returned by the sink", f"{stats['throttled']:,}"),
        _line("urgent singles, tenant A: p50 / p99 / max",
             f"{_ms(_quantile(urgent, 0.5))} / {_ms(_quantile(urgent, 0.99))} / "
             f"{_ms(max(urgent, default=float('nan')))}"),
        _line("… first-in-first-out would have been (p50 / p99)",
             f"{_ms(statistics.median(fifo))} / {_ms(_quantile(fifo, 0.99))}"),
        _line("singles, tenant B: p50 / p99 / max",
             f"{_ms(_quantile(other, 0.5))} / {_ms(_quantile(other, 0.99))} / "
             f"{_ms(max(other, default=float('nan')))}"),
        _line("singles never delivered", f"{urgent_lost + other_lost}"),
        _line("status of the broadcast said waiting:", ", ".join(
            sorted(str(w) for w in waiting_seen))),
        _line("Herald CPU (share of one core) / peak RSS",
             f"{meter.herald / meter.wall:.0%} / {rss or 0:,.0f} MiB"),
        _line("other processes' CPU (cores)", f"{meter.others / meter.wall:.2f}"),
        f"  target urgent p99 ≤ {URGENT_TARGET:.0f} s: {_verdict(urgent_ok)}   "
        f"tenant B p99 ≤ {OTHER_TENANT_TARGET * 1000:.0f} ms: {_verdict(other_ok)}   "
        f"broadcast share ≥ {BROADCAST_SHARE_TARGET:.0%}: {_verdict(share_ok)}",
    ]


async def _all_once(
    http: aiohttp.ClientSession, url: str, sink_url: str, herald: Child, notification_id: str,
    total: int,
) -> tuple[float, dict[str, Any]]:
    t_post = await _post(http, url, {
        "id": notification_id, "type": "it.note", "title": "Maintenance tonight",
        "recipients": {"all": True},
    })
    return t_post, await _wait_accepted(http, sink_url, herald, total)


async def part_tenants(tenants: int, per_tenant: int, outcome: Outcome, workdir: Path) -> None:
    """The limited run, then, in the same run and on the same data, the same broadcast to a
    sink without limits on the same port: what this process can send at all on this machine."""
    total = tenants * per_tenant
    port = _free_port()
    limited_args = ["-m", "tests.peers.connector", "--port", str(port), "--quiet",
                    "--teams-limits"]
    async with aiohttp.ClientSession(trust_env=False) as http:
        sink, sink_url = await start_sink(limited_args, workdir, "connector")
        herald: Child | None = None
        try:
            await seed(
                workdir / "herald.db",
                {f"tenant-{i:02d}": per_tenant for i in range(tenants)},
                sink_url,
            )
            herald, url = await start_herald(workdir, workdir, http, {})
            meter = CpuMeter(herald.pid, sink.pid)
            meter.start()
            t_post, stats = await _all_once(http, url, sink_url, herald, "everyone", total)
            meter.stop()
            await sink.stop()
            sink, sink_url = await start_sink(limited_args[:-1], workdir, "sink-unlimited")
            ceiling_meter = CpuMeter(herald.pid, sink.pid)
            ceiling_meter.start()
            _, unlimited = await _all_once(
                http, url, sink_url, herald, "everyone-again", total
            )
            ceiling_meter.stop()
            await herald.stop()
            herald = None
        finally:
            if herald is not None:
                await herald.stop()
            await sink.stop()
    first, last = stats["firstAcceptAt"], stats["lastAcceptAt"]
    span = last - first
    allowed = tenants * (TENANT_RATE + TENANT_RATE * span)
    share = int(stats["accepted"]) / allowed if span > 0 else 0.0
    fewest = min(stats["perTenant"].items(), key=lambda item: item[1]["accepted"])
    ceiling_span = unlimited["lastAcceptAt"] - unlimited["firstAcceptAt"]
    ceiling = total / ceiling_span if ceiling_span > 0 else float("nan")
    achieved = int(stats["accepted"]) / span if span > 0 else 0.0
    reachable = min(ceiling, tenants * TENANT_RATE)
    outcome.lines += [
        "",
        f"PART 3 — one {{\"all\": true}} to {tenants} tenants x {per_tenant:,} users "
        f"(Teams limits at the sink)",
        _line("messages accepted / expected", f"{stats['accepted']:,} / {total:,}"),
        _line("first send after POST", _ms(first - t_post)),
        _line("span first→last send", f"{span:.2f} s"),
        _line("achieved rate", f"{achieved:,.0f}/s"),
        _line(f"allowed = {tenants} x (50 + 50/s x span)", f"{allowed:,.0f}"),
        _line("share of the allowed aggregate rate", f"{share * 100:.2f} %"),
        _line("429s returned by the sink", f"{stats['throttled']:,}"),
        _line("tenant with the fewest sends", f"{fewest[0]}: {fewest[1]['accepted']}"),
        _line("Herald CPU (share of one core)", f"{meter.herald / meter.wall:.0%}"),
        _line("other processes' CPU (cores)", f"{meter.others / meter.wall:.2f}"),
        _line("same broadcast, sink without limits: rate", f"{ceiling:,.0f}/s"),
        _line("… Herald CPU (share of one core)",
              f"{ceiling_meter.herald / ceiling_meter.wall:.0%}"),
        _line("achieved / min(allowed, without limits)", f"{achieved / reachable * 100:.1f} %"),
        f"  target ≥ {AGGREGATE_SHARE_TARGET:.0%} of the allowed aggregate rate: "
        f"{_verdict(share >= AGGREGATE_SHARE_TARGET)}"
        + ("" if ceiling >= tenants * TENANT_RATE else
           f"   (this process sends at most {ceiling:,.0f}/s here: the limit is its CPU)"),
    ]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Herald fairness benchmark (see docstring).")
    parser.add_argument("--users", type=int, default=10_000, help="broadcast size (parts 1-2)")
    parser.add_argument("--singles", type=int, default=20, help="singles per tenant (parts 1-2)")
    parser.add_argument("--tenants", type=int, default=40, help="tenants (part 3)")
    parser.add_argument("--tenant-users", type=int, default=500, help="users each (part 3)")
    parser.add_argument("--part", choices=["1", "3", "all"], default="all")
    args = parser.parse_args(argv)
    if min(args.users, args.singles, args.tenants, args.tenant_users) < 1:
        parser.error("sizes must be at least 1")
    return args


async def _main(args: argparse.Namespace) -> int:
    outcome = Outcome()
    outcome.lines.append(
        f"Herald fairness benchmark — {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; started {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"
    )
    workdir = Path(tempfile.mkdtemp(prefix="herald-fairness-"))
    try:
        if args.part in ("1", "all"):
            await part_singles(args.users, args.singles, outcome,
                               Path(tempfile.mkdtemp(prefix="singles-", dir=workdir)))
        if args.part in ("3", "all"):
            await part_tenants(args.tenants, args.tenant_users, outcome,
                               Path(tempfile.mkdtemp(prefix="tenants-", dir=workdir)))
    except BenchError as exc:
        outcome.broken = True
        outcome.lines.append(f"\nBROKEN: {exc}")
    if outcome.broken:
        outcome.lines.append(f"(databases and logs kept in {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(outcome.lines))
    return 1 if outcome.broken else 0


def main(argv: Sequence[str] | None = None) -> int:
    for name in [k for k in os.environ if "proxy" in k.lower()]:
        del os.environ[name]
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    return asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
