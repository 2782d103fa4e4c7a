"""Read storms: 10,000 people mark a notification read at once; does the API stay fast?

Usage::

    .venv/bin/python bench/read_storm.py [--users N] [--notifications K] [--concurrency C]

Method
------
Everything runs on this host over loopback (127.0.0.1), proxy variables removed. N users, each
with K notifications in their inbox (written through Herald's own stores into a fresh SQLite
file, the way the router writes them), then ``python app.py`` starts on that file (SQLite, the
embedded backend). Three storms follow, each with C requests in flight at once (one aiohttp
connection each), while a probe asks ``GET /api/notifications/{id}`` (the funnel counts
included) and ``GET /api/users/{id}/notifications`` every 20 ms:

1. **read one**: every user reads the newest notification (``POST
   /api/notifications/{id}/read`` with the API key and ``userId``: what the mobile app and a
   backend send; the inbox page and the service worker take the same path);
2. **read again**: the same N requests once more (retries: idempotent, nothing changes);
3. **read all**: every user marks everything read (``POST
   /api/users/{id}/notifications/read-all``, what `mark all read` does);
4. **people arriving**: an open loop, closer to a storm of people than C clients that never
   rest: the 10,000 reads of another notification are started at a fixed rate R (default 400/s,
   all of them within 25 s), each timed from when it was due to start (so waiting for a free
   connection counts: no coordinated omission).

Latency is measured per request from just before it is sent to its answer's last byte;
p50/p95/p99/max are printed for each storm and for the probe during the storms. A closed loop
of C clients measures capacity: its latency is C / throughput by construction (Little's law).
Target: the API's p99 under 100 ms (issue 14): the probe during the storms, and the reads of
the open loop.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.broadcast import API_KEY, BenchError, seeding_stores, start_herald  # noqa: E402
from notifications.event import StoredEvent  # noqa: E402
from storage.records import UserRecord  # noqa: E402

P99_TARGET_MS = 100.0


def user_id(index: int) -> str:
    return f"emulator:reader-{index:06d}"


async def seed(db_path: Path, users: int, notifications: int) -> list[str]:
    """N users with K notifications each in their inbox; the notification ids, oldest first."""
    stores = seeding_stores(db_path, synchronous="NORMAL")
    await stores.open()
    try:
        store, queue, user_store = stores.notifications, stores.queue, stores.users
        ids = [user_id(i) for i in range(users)]
        for uid in ids:
            await user_store.upsert_user(UserRecord(uid, "emulator"))
        nids: list[str] = []
        for k in range(notifications):
            nid = f"policy-{k}"
            event = StoredEvent.from_document({
                "id": nid, "type": "hr.policy", "title": f"Policy update {k}",
                "acknowledge": {"text": "I have read it"}, "recipients": {"all": True},
            })
            digest = hashlib.sha256(nid.encode()).hexdigest()
            _, record = await store.put(nid, digest, event, "hr.policy", users)
            for start in range(0, users, 500):
                page = ids[start : start + 500]
                await queue.add_page(nid, record.version, [], page, page[-1])
            await queue.finish_expansion(nid, record.version)
            nids.append(nid)
        return nids
    finally:
        await stores.close()


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99),
            "max": ordered[-1] * 1000}


async def storm(
    http: aiohttp.ClientSession,
    requests: Sequence[Callable[[], Awaitable[int]]],
    concurrency: int,
) -> tuple[list[float], float, dict[int, int]]:
    """Run the requests C at a time; (latencies, wall seconds, answers by status)."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    queue = iter(requests)

    async def worker() -> None:
        for send in queue:
            started = time.perf_counter()
            code = await send()
            latencies.append(time.perf_counter() - started)
            codes[code] = codes.get(code, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began, codes


async def open_loop(
    requests: Sequence[Callable[[], Awaitable[int]]], rate: float
) -> tuple[list[float], float, dict[int, int]]:
    """Start request i at i / rate seconds; latency from that due time to the answer."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    began = time.perf_counter()

    async def one(index: int, send: Callable[[], Awaitable[int]]) -> None:
        due = began + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        code = await send()
        latencies.append(time.perf_counter() - due)
        codes[code] = codes.get(code, 0) + 1

    await asyncio.gather(*(one(i, send) for i, send in enumerate(requests)))
    return latencies, time.perf_counter() - began, codes


async def probe(http: aiohttp.ClientSession, url: str, nid: str, stop: asyncio.Event,
                samples: list[float]) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    paths = [f"/api/notifications/{nid}", f"/api/users/{user_id(0)}/notifications"]
    turn = 0
    while not stop.is_set():
        started = time.perf_counter()
        async with http.get(url + paths[turn % 2], headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise BenchError(f"probe {paths[turn % 2]} answered {response.status}")
        samples.append(time.perf_counter() - started)
        turn += 1
        await asyncio.sleep(0.02)


def _row(label: str, stats: dict[str, float], extra: str = "") -> str:
    if not stats.get("n"):
        return f"{label:<34} (no samples)"
    return (
        f"{label:<34} n={int(stats['n']):>6}  p50 {stats['p50']:6.1f} ms  "
        f"p95 {stats['p95']:6.1f} ms  p99 {stats['p99']:6.1f} ms  max {stats['max']:7.1f} ms"
        f"{extra}"
    )


async def _main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="herald-read-storm-"))
    try:
        data_dir = workdir / "herald-data"
        data_dir.mkdir()
        began = time.perf_counter()
        nids = await seed(data_dir / "herald.db", args.users, args.notifications)
        print(f"seeded {args.users} users x {args.notifications} notifications "
              f"in {time.perf_counter() - began:.1f} s")
        connector = aiohttp.TCPConnector(limit=max(args.concurrency + 4, 256))
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
            herald, url = await start_herald(data_dir, workdir, http, {})
            try:
                return await _storms(http, url, nids, args)
            finally:
                await herald.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _storms(
    http: aiohttp.ClientSession, url: str, nids: list[str], args: argparse.Namespace
) -> int:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    newest = nids[-1]

    def read(uid: str, nid: str = newest) -> Callable[[], Awaitable[int]]:
        async def send() -> int:
            async with http.post(f"{url}/api/notifications/{nid}/read",
                                 json={"userId": uid}, headers=headers) as response:
                await response.read()
                return response.status
        return send

    def read_all(uid: str) -> Callable[[], Awaitable[int]]:
        async def send() -> int:
            async with http.post(f"{url}/api/users/{uid}/notifications/read-all",
                                 headers=headers) as response:
                await response.read()
                return response.status
        return send

    users = [user_id(i) for i in range(args.users)]
    probe_samples: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(http, url, newest, stop, probe_samples))
    results: list[tuple[str, dict[str, float], float, dict[int, int]]] = []
    try:
        for label, make in (("read one", read), ("read again (retries)", read),
                            ("read all", read_all)):
            latencies, wall, codes = await storm(http, [make(u) for u in users],
                                                 args.concurrency)
            results.append((label, percentiles(latencies), wall, codes))
        latencies, wall, codes = await open_loop([read(u, nids[0]) for u in users], args.rate)
        results.append((f"people arriving, {args.rate:.0f}/s", percentiles(latencies), wall,
                        codes))
    finally:
        stop.set()
        await prober
    async with http.get(f"{url}/api/notifications/{newest}", headers=headers) as response:
        funnel = (await response.json()).get("engagement")

    print(f"\nPython {platform.python_version()} on {platform.machine()}, "
          f"{args.users} users, {args.concurrency} requests in flight, SQLite")
    for label, stats, wall, codes in results:
        rate = stats["n"] / wall if wall else 0.0
        print(_row(label, stats, f"  {rate:6.0f} req/s  {codes}"))
    probe_stats = percentiles(probe_samples)
    print(_row("probe GET during the storms", probe_stats))
    worst = max(probe_stats.get("p99", 0.0), results[-1][1].get("p99", 0.0))
    print(f"funnel after the storms: {funnel}")
    verdict = "met" if worst < P99_TARGET_MS else "NOT met"
    print(f"target p99 < {P99_TARGET_MS:.0f} ms: {verdict} (worst p99 {worst:.1f} ms)")
    return 0 if worst < P99_TARGET_MS else 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--notifications", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=400.0, help="open loop: reads/s")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(_main(_parse(argv)))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
