"""Web Push benchmark: encrypted pushes per second to web-push-testing for N subscriptions.

Usage::

    .venv/bin/python bench/webpush.py [--subscriptions N] [--baseline K] [--concurrency C]

Method
------
Everything runs on this host over loopback (127.0.0.1); proxy variables are removed from the
environment of the driver and of every child. One VAPID key is generated; every push is
RFC 8291 aes128gcm-encrypted for its subscription and carries an RFC 8292 VAPID JWT.

Against **web-push-testing** (npm, the tests' push service, its own Node process started by
``tests/peers/node/web-push-testing.js``), N subscriptions (default 2,000) are made for the key
as browsers would; it verifies each push's JWT against the key and *decrypts* its body, and
only pushes it answered 201 are counted (the run fails if one is missing):

1. **its ceiling**: each subscription's push is encrypted and signed before the clock starts,
   then the N ready requests are posted with aiohttp at concurrency C (default 64): the rate
   of the push service alone, so a Herald figure close to it means the push service, not
   Herald, is the limit.
2. **Herald, end to end**: Herald runs as ``python app.py`` (its defaults: 64 workers) on a
   SQLite file seeded before it starts with N users, each with one subscription (through
   Herald's own stores). The driver takes ``t_post`` just before it POSTs one
   ``{"recipients": {"all": true}}`` event and waits until the push service has delivered N
   more pushes and the status says ``completed``; the rate is ``N / (last delivery - t_post)``
   (expansion, outbox, encryption, sending and settling included).
3. **Herald's channel alone**: ``WebPushChannel.send`` for the N subscriptions in this process
   at concurrency C (one shared aiohttp session): what the channel costs without the outbox.
4. **Baseline**: a sequential loop of ``pywebpush.webpush`` (the library's one-call API, a
   fresh ``vapid_claims`` dict per call, aes128gcm, one ``requests`` session) for K
   subscriptions (default K = N).

web-push-testing spends milliseconds of CPU per push on one Node thread (JWT verification and
decryption), so the same four runs are repeated against a **null push service**
(``bench/push_sink.py``: answers 201 after checking the request looks like a Web Push, decrypts
nothing) for N synthetic subscriptions with real P-256 keys: what Herald sustains when the push
service is not the limit.

CPU seconds (``/proc/<pid>/stat``) of the sender (Herald, or this driver for runs 1, 3 and 4)
and of the push service over each window show which side was busy: a single-threaded process
near one CPU-second per wall second is the bottleneck. This machine is shared, so the CPU every
other process used in the same window (``/proc/stat`` busy time minus ours) is shown too.
Target: Herald end to end >= 1,000 pushes/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from pywebpush import WebPusher, webpush  # noqa: E402

from bench.broadcast import seeding_stores  # noqa: E402
from delivery.allowed_hosts import AllowedHosts  # noqa: E402
from delivery.outbox import DeliveryJob  # noqa: E402
from delivery.vapid import VapidKeys  # noqa: E402
from delivery.webpush import WebPushChannel  # noqa: E402
from notifications.event import StoredEvent  # noqa: E402
from storage.records import NotificationRecord, UserRecord  # noqa: E402
from storage.subscriptions import PushSubscription  # noqa: E402
from tests.peers.webpush import WebPushTesting, WebPushTestingServer  # noqa: E402

API_KEY = "bench-" + uuid.uuid4().hex
SUBJECT = "mailto:bench@herald.example"
TARGET = 1_000.0
STALL_SECONDS = 30.0
EVENT: dict[str, Any] = {
    "type": "bench.webpush",
    "title": "Quarterly security training is due",
    "text": "Please complete the 20-minute course by Friday. It covers phishing and passwords.",
    "severity": "warning",
    "url": "https://learning.example.com/courses/security-2025",
    "recipients": {"all": True},
}
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A step broke (a push missing, a process not starting), not merely a missed target."""


class Target(Protocol):
    """A browser's subscription as a sender sees it."""

    @property
    def endpoint(self) -> str: ...
    @property
    def p256dh(self) -> str: ...
    @property
    def auth(self) -> str: ...


@dataclass(frozen=True)
class SyntheticBrowser:
    """A subscription at the null push service: a real P-256 key and secret."""

    endpoint: str
    p256dh: str
    auth: str


class PushService(Protocol):
    name: str
    pid: int | None

    async def delivered(self) -> tuple[int, float | None]:
        """Pushes accepted so far, and when the last one was (epoch seconds)."""
        ...


class WptService:
    name = "web-push-testing"

    def __init__(self, client: WebPushTesting, pid: int | None) -> None:
        self.client, self.pid = client, pid

    async def delivered(self) -> tuple[int, float | None]:
        stats = await self.client.stats()
        last = stats["lastDeliveredAt"]
        return int(stats["delivered"]), None if last is None else last / 1000.0


class SinkService:
    name = "null push service"

    def __init__(self, url: str, pid: int | None, http: aiohttp.ClientSession) -> None:
        self.url, self.pid, self._http = url, pid, http

    async def delivered(self) -> tuple[int, float | None]:
        async with self._http.get(f"{self.url}/_stats") as response:
            stats = await response.json(content_type=None)
        if stats["rejected"]:
            raise BenchError(f"the null push service refused {stats['rejected']} push(es)")
        return int(stats["accepted"]), stats["lastAt"]


@dataclass
class Result:
    service: str
    name: str
    pushes: int
    seconds: float
    sender_cpu: float | None = None
    service_cpu: float | None = None
    others_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.pushes / self.seconds if self.seconds > 0 else 0.0


def _cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat), to see other load."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS


class Meter:
    """CPU used over a window by the sender, the push service, and everything else on the
    machine (this host is shared: other load moves wall-clock rates)."""

    def __init__(self, sender: int | None, service: int | None) -> None:
        self._pids = {"sender": sender, "service": service, "driver": os.getpid()}
        self._start = {k: _cpu(v) for k, v in self._pids.items()}
        self._busy = _machine_busy()

    def stop(self) -> dict[str, float]:
        used = {k: _cpu(v) - self._start[k] for k, v in self._pids.items()}
        ours = used["service"] + used["driver"]
        if self._pids["sender"] != self._pids["driver"]:
            ours += used["sender"]
        used["others"] = max(0.0, _machine_busy() - self._busy - ours)
        return used


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loopback_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env.update(extra)
    return env


def _payload() -> bytes:
    return json.dumps({"id": "bench", "title": EVENT["title"], "text": EVENT["text"]}).encode()


async def _wait_delivered(service: PushService, target: int) -> float:
    """Wait until the service accepted `target` pushes in all; when it got the last one."""
    last, last_change = -1, time.monotonic()
    while True:
        count, last_at = await service.delivered()
        if count >= target and last_at is not None:
            return last_at
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > STALL_SECONDS:
            raise BenchError(f"{service.name}: pushes stopped arriving at {count} of {target}")
        await asyncio.sleep(0.01)


async def ceiling(
    service: PushService, subs: Sequence[Target], vapid: VapidKeys, concurrency: int
) -> Result:
    """The push service alone: requests encrypted and signed before the clock starts."""
    ready: list[tuple[str, bytes, dict[str, str]]] = []
    for sub in subs:
        keys = {"p256dh": sub.p256dh, "auth": sub.auth}
        body = WebPusher({"endpoint": sub.endpoint, "keys": keys}).encode(_payload())["body"]
        headers = {
            "Authorization": vapid.authorization(sub.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": "60",
        }
        ready.append((sub.endpoint, body, headers))
    before, _ = await service.delivered()
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def post(endpoint: str, body: bytes, headers: dict[str, str]) -> int:
            async with limit, http.post(endpoint, data=body, headers=headers) as response:
                await response.read()
                return response.status

        meter, start = Meter(os.getpid(), service.pid), time.monotonic()
        statuses = await asyncio.gather(*(post(*request) for request in ready))
        seconds = time.monotonic() - start
        used = meter.stop()
    after, _ = await service.delivered()
    if set(statuses) != {201} or after - before != len(subs):
        raise BenchError(f"{service.name} refused pushes: {sorted(set(statuses))}")
    return Result(
        service.name,
        "push service alone (pre-encrypted requests)",
        len(subs),
        seconds,
        used["sender"],
        used["service"],
        used["others"],
    )


async def channel_alone(
    service: PushService, subs: Sequence[Target], vapid: VapidKeys, concurrency: int
) -> Result:
    """WebPushChannel.send for every subscription, in this process (no outbox)."""
    channel = WebPushChannel(_UnusedStore(), vapid, allowed_hosts=AllowedHosts(["127.0.0.1:*"]))
    record = NotificationRecord(
        id="bench-channel",
        version=1,
        content_hash="",
        event=StoredEvent.from_document({**EVENT, "id": "bench-channel"}),
        type=EVENT["type"],
        recipients=len(subs),
        expanded_version=1,
        expand_cursor=None,
        created_at=0.0,
        updated_at=0.0,
    )
    targets = [
        PushSubscription(user_id=f"u{i}", endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth)
        for i, s in enumerate(subs)
    ]
    before, _ = await service.delivered()
    limit = asyncio.Semaphore(concurrency)

    async def send(i: int, target: PushSubscription) -> str:
        job = DeliveryJob(i, record.id, target.user_id, "webpush", target.id, 0, 0, None)
        async with limit:
            return (await channel.send(job, target, record)).status

    meter, start = Meter(os.getpid(), service.pid), time.monotonic()
    statuses = await asyncio.gather(*(send(i, t) for i, t in enumerate(targets)))
    seconds = time.monotonic() - start
    used = meter.stop()
    await channel.aclose()
    after, _ = await service.delivered()
    if after - before != len(subs) or set(statuses) != {"delivered"}:
        raise BenchError(f"channel: {after - before} of {len(subs)} delivered, {set(statuses)}")
    return Result(
        service.name,
        "Herald's WebPushChannel.send alone",
        len(subs),
        seconds,
        used["sender"],
        used["service"],
        used["others"],
    )


class _UnusedStore:
    """send() never touches the store; targets come from the driver."""


async def end_to_end(
    service: PushService, subs: Sequence[Target], vapid_pem: str, workdir: Path
) -> tuple[Result, str]:
    """Herald as `python app.py`: one {"all": true} event to N users with one browser each."""
    data_dir = workdir / f"herald-{uuid.uuid4().hex[:8]}"
    stores = seeding_stores(data_dir / "herald.db", synchronous="NORMAL")
    await stores.open()
    users, store = stores.users, stores.subscriptions
    for i, sub in enumerate(subs):
        user_id = f"bench:user-{i:05d}"
        await users.upsert_user(UserRecord(user_id=user_id, channel_id="bench", name=f"U{i}"))
        await store.save(
            PushSubscription(
                user_id=user_id, endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth
            )
        )
    await stores.close()
    port = _free_port()
    env = _loopback_env(
        HERALD_DATA_DIR=str(data_dir),
        HERALD_API_KEYS=API_KEY,
        PORT=str(port),
        HOST="127.0.0.1",
        HERALD_LOG_LEVEL="WARNING",
        WEBPUSH_VAPID_PRIVATE_KEY=vapid_pem,
        WEBPUSH_VAPID_SUBJECT=SUBJECT,
        # The push service is on loopback: allowed here, as the channel measurement allows it.
        WEBPUSH_ALLOWED_HOSTS="127.0.0.1:*",
    )
    log_path = workdir / "herald.log"
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "app.py"), cwd=str(ROOT), env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(f"{url}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if process.returncode is not None or time.monotonic() > deadline:
                    raise BenchError(log_path.read_text()[-2000:])
                await asyncio.sleep(0.1)
            before, _ = await service.delivered()
            meter = Meter(process.pid, service.pid)
            t_post = time.time()
            async with http.post(f"{url}/api/notifications", json=EVENT, headers=auth) as answer:
                accepted = await answer.json()
                if answer.status != 202:
                    raise BenchError(f"POST answered {answer.status}: {accepted}")
            last_at = await _wait_delivered(service, before + len(subs))
            used = meter.stop()
            while True:
                async with http.get(
                    f"{url}/api/notifications/{accepted['id']}", headers=auth
                ) as response:
                    status = await response.json()
                if status["status"] == "completed":
                    break
                await asyncio.sleep(0.05)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    counters = status["channels"].get("webpush", {})
    if counters.get("delivered") != len(subs):
        raise BenchError(f"Herald's status: {status['channels']}")
    summary = (
        f"{service.name}: Herald's status {status['status']}, webpush delivered "
        f"{counters['delivered']}, retrying {counters.get('retrying', 0)}, failed "
        f"{counters.get('failed', 0)}"
    )
    return (
        Result(
            service.name,
            "Herald end to end (POST -> last push accepted)",
            len(subs),
            last_at - t_post,
            used["sender"],
            used["service"],
            used["others"],
        ),
        summary,
    )


def baseline(service_name: str, subs: Sequence[Target], vapid_raw: str, pid: int | None) -> Result:
    """The library's one-call API in a plain loop, as a script without Herald would do it."""
    session = requests.Session()
    session.trust_env = False  # never a proxy: loopback only
    data = _payload().decode()
    meter, start = Meter(os.getpid(), pid), time.monotonic()
    for sub in subs:
        response = webpush(
            {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
            data=data,
            vapid_private_key=vapid_raw,  # base64url of the 32-byte key, as people pass it
            vapid_claims={"sub": SUBJECT},  # fresh each call: pywebpush adds aud and exp
            content_encoding="aes128gcm",
            ttl=60,
            headers={"Content-Type": "application/octet-stream"},
            requests_session=session,
        )
        if getattr(response, "status_code", None) != 201:
            raise BenchError(f"pywebpush.webpush: {response}")
    seconds = time.monotonic() - start
    used = meter.stop()
    return Result(
        service_name,
        "pywebpush.webpush, sequential loop",
        len(subs),
        seconds,
        used["sender"],
        used["service"],
        used["others"],
    )


async def _wpt_subscriptions(client: WebPushTesting, public_key: str, count: int) -> list[Target]:
    limit = asyncio.Semaphore(32)

    async def one() -> Target:
        async with limit:
            return await client.subscribe(public_key)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _synthetic(url: str, count: int) -> list[Target]:
    browsers: list[Target] = []
    for i in range(count):
        point = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        browsers.append(SyntheticBrowser(f"{url}/push/{i}", _b64(point), _b64(os.urandom(16))))
    return browsers


async def _suite(
    service: PushService,
    subs: Sequence[Target],
    vapid: VapidKeys,
    pem: str,
    raw: str,
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[list[Result], str]:
    print(f"  {service.name}: ceiling ...", flush=True)
    results = [await ceiling(service, subs, vapid, args.concurrency)]
    print(f"  {service.name}: Herald end to end ...", flush=True)
    e2e, summary = await end_to_end(service, subs, pem, workdir)
    results.append(e2e)
    print(f"  {service.name}: Herald's channel alone ...", flush=True)
    results.append(await channel_alone(service, subs, vapid, args.concurrency))
    print(f"  {service.name}: pywebpush.webpush loop ...", flush=True)
    results.append(
        await asyncio.to_thread(baseline, service.name, subs[: args.baseline], raw, service.pid)
    )
    return results, summary


def _table(results: Sequence[Result]) -> list[str]:
    def cpu(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [
        f"{'push service':18} {'run':47} {'pushes':>6} {'s':>6} {'pushes/s':>9} "
        f"{'sender CPU s':>12} {'service CPU s':>13} {'others CPU s':>12}"
    ]
    for r in results:
        lines.append(
            f"{r.service:18} {r.name:47} {r.pushes:>6} {r.seconds:>6.2f} {r.rate:>9,.0f} "
            f"{cpu(r.sender_cpu):>12} {cpu(r.service_cpu):>13} {cpu(r.others_cpu):>12}"
        )
    lines.append(
        "(sender: Herald's process for end to end, this driver otherwise; others: every other "
        "process on this shared machine in the same window)"
    )
    return lines


async def _main(args: argparse.Namespace) -> int:
    for name in list(os.environ):
        if name.lower() in PROXY_VARIABLES:
            del os.environ[name]
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    raw = _b64(key.private_numbers().private_value.to_bytes(32, "big"))
    vapid = VapidKeys(key, SUBJECT)
    print(
        f"Web Push benchmark: {args.subscriptions} subscriptions, concurrency {args.concurrency}, "
        f"baseline loop {args.baseline}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    summaries: list[str] = []
    with WebPushTestingServer() as server, tempfile.TemporaryDirectory() as tmp:
        async with WebPushTesting(server.url) as client:
            wpt = WptService(client, server.pid)
            subs = await _wpt_subscriptions(client, vapid.public_key, args.subscriptions)
            results, summary = await _suite(wpt, subs, vapid, pem, raw, args, Path(tmp))
            summaries.append(summary)
            sample = json.loads((await client.notifications(subs[0]))[1])
            summaries.append(f"web-push-testing decrypted Herald's push: {sample}")
        sink = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "push_sink.py"),
            stdout=asyncio.subprocess.PIPE,
            env=_loopback_env(),
        )
        try:
            assert sink.stdout is not None
            line = (await asyncio.wait_for(sink.stdout.readline(), 30)).decode()
            if not line.startswith("LISTENING "):
                raise BenchError("the null push service did not start")
            url = line.split()[1]
            async with aiohttp.ClientSession() as http:
                null = SinkService(url, sink.pid, http)
                more, summary = await _suite(
                    null, _synthetic(url, args.subscriptions), vapid, pem, raw, args, Path(tmp)
                )
                results += more
                summaries.append(summary)
        finally:
            sink.terminate()
            await sink.wait()
    print()
    print("\n".join(_table(results)))
    print()
    for line in summaries:
        print(line)
    wpt_ceiling, wpt_e2e, _, wpt_loop, _, null_e2e, _, null_loop = results
    print(
        f"Herald end to end vs the pywebpush loop: {wpt_e2e.rate / wpt_loop.rate:.1f}x on "
        f"web-push-testing, {null_e2e.rate / null_loop.rate:.1f}x on the null push service"
    )
    for name, e2e in (("web-push-testing", wpt_e2e), ("the null push service", null_e2e)):
        verdict = "PASS" if e2e.rate >= TARGET else "FAIL"
        print(
            f"target >= {TARGET:,.0f} pushes/s end to end to {name}: {verdict} ({e2e.rate:,.0f}/s)"
        )
    if wpt_e2e.rate < TARGET:
        print(
            f"web-push-testing's own ceiling in this run: {wpt_ceiling.rate:,.0f} pushes/s "
            f"({wpt_ceiling.service_cpu / wpt_ceiling.pushes * 1000:.1f} ms of its CPU per push, "
            f"one Node thread); Herald reached {wpt_e2e.rate / wpt_ceiling.rate:.0%} of it"
        )
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--subscriptions", type=int, default=2_000)
    parser.add_argument("--baseline", type=int, default=None, help="K for the pywebpush loop")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    if args.baseline is None:
        args.baseline = args.subscriptions
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return asyncio.run(_main(_parse(argv)))
    except BenchError as exc:
        print(f"\nFAILURE: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
