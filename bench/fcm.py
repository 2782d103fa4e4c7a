"""FCM benchmark: messages/s to a stand-in of the FCM HTTP v1 API for N device tokens.

Usage::

    .venv/bin/python bench/fcm.py [--tokens N] [--sdk-sample K] [--sdk-async-sample M]
                                  [--workers W1,W2] [--skip-e2e]

Method
------
Everything runs on this host over loopback (127.0.0.1), proxy variables removed. The stand-in
(``python -m tests.peers.fcm``: FCM's ``messages:send`` and the OAuth token endpoint, checking
the bearer token and each message's schema) runs as its own process and counts what it
accepts, with the ``time.monotonic()`` of the first and last accepted message (CLOCK_MONOTONIC
is shared by all processes on Linux). Every sender authenticates with the same service-account
file (its ``token_uri`` is the stand-in), through firebase-admin's / google-auth's real flow.
Each message is the same notification (title, text, link, data) to a distinct token.

1. **SDK loop** (the baseline, same run): firebase-admin 7.7 as documented, a sequential loop
   of ``messaging.send`` for K tokens (default K = N), its endpoint pointed at the stand-in.
2. **SDK send_each_async**: one ``messaging.send_each_async`` call of M messages (default 500)
   with the SDK's own httpx transport, to show what the channel's transport choice is about.
3. **Herald's channel**: ``delivery.fcm.FcmChannel.send`` for all N tokens at once, as the
   delivery worker calls it (one task per delivery); the channel micro-batches them into
   batches of at most 500 concurrent FCM v1 requests over Herald's HTTP client.
4. **Herald end to end** (unless ``--skip-e2e``): N users with one Android device each are
   written into a fresh SQLite file through Herald's stores, ``python app.py`` starts with
   FIREBASE_CREDENTIALS/FCM_ENDPOINT pointing at the stand-in, and one ``{"all": true}`` event
   is posted; the clock runs from just before the POST to the stand-in's last accepted message
   (expansion, outbox, worker, settling included). Once per HERALD_WORKERS value W (default:
   Herald's 64, and 512): a batch is as large as the deliveries in flight, and with 64 the
   batches go out in lock-step rounds (each waits for its slowest answer).

Rates are ``count / (last accepted - start)``; CPU per message (sender, stand-in) and what
other processes used are printed too, since this machine is shared. Target: Herald >= 2,000
messages/s — the channel (3) and the best end-to-end run (4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import firebase_admin  # noqa: E402
from firebase_admin import credentials, messaging  # noqa: E402

from bench.broadcast import (  # noqa: E402
    API_KEY,
    BenchError,
    cpu_seconds,
    machine_busy_seconds,
    seeding_stores,
    start_herald,
    start_sink,
)
from delivery.fcm import FcmChannel  # noqa: E402
from delivery.outbox import DeliveryJob  # noqa: E402
from notifications.event import StoredEvent  # noqa: E402
from storage.devices import DeviceRecord, DeviceRegistration  # noqa: E402
from storage.records import NotificationRecord, UserRecord  # noqa: E402

RATE_TARGET = 2_000.0
EVENT: dict[str, Any] = {
    "type": "bench.push",
    "title": "Quarterly security training is due",
    "text": "Please complete the 20-minute course by Friday. It covers phishing and passwords.",
    "severity": "warning",
    "url": "https://learning.example.com/courses/security-2025",
    "data": {"course": "security-2025", "minutes": 20},
    "recipients": {"all": True},
}


def fcm_token(index: int) -> str:
    return f"bench{index:06d}:APA91b{secrets.token_urlsafe(105)}"


class Standin:
    """The stand-in's counters over HTTP."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def stats(self) -> dict[str, Any]:
        async with self.http.get(self.url + "/_stats") as response:
            body: dict[str, Any] = await response.json()
            return body

    async def reset(self) -> None:
        async with self.http.post(self.url + "/_reset") as response:
            await response.read()

    async def wait_accepted(self, count: int, seconds: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            stats = await self.stats()
            if stats["accepted"] >= count:
                return stats
            if time.monotonic() > deadline:
                raise BenchError(f"the stand-in accepted {stats['accepted']} of {count}: {stats}")
            await asyncio.sleep(0.05)


def _message(token: str) -> messaging.Message:
    message = messaging.Message(
        notification=messaging.Notification(title=EVENT["title"], body=EVENT["text"]),
        data={"course": "security-2025", "minutes": "20", "herald.url": EVENT["url"]},
        android=messaging.AndroidConfig(priority="normal", collapse_key="bench"),
    )
    message.token = token  # `Message(token=...)` only adds a DeprecationWarning
    return message


def _sdk_app(account: Path, endpoint: str, name: str) -> firebase_admin.App:
    """A firebase_admin App as the SDK's documentation sets it up, its endpoint the stand-in."""
    cert = credentials.Certificate(str(account))
    app = firebase_admin.initialize_app(cert, {"projectId": cert.project_id}, name=name)
    original = messaging._MessagingService.FCM_URL
    messaging._MessagingService.FCM_URL = endpoint + "/v1/projects/{0}/messages:send"
    try:
        messaging._get_messaging_service(app)
    finally:
        messaging._MessagingService.FCM_URL = original
    return app


def sdk_loop(account: Path, endpoint: str, tokens: Sequence[str]) -> tuple[float, int]:
    """Sequential `messaging.send`; returns (seconds from first send to last answer, sent)."""
    app = _sdk_app(account, endpoint, "bench-sdk-loop")
    try:
        messaging.send(_message(tokens[0]), app=app)  # the OAuth token, the connection
        start = time.monotonic()
        for token in tokens[1:]:
            messaging.send(_message(token), app=app)
        return time.monotonic() - start, len(tokens) - 1
    finally:
        firebase_admin.delete_app(app)


def sdk_send_each_async(account: Path, endpoint: str, tokens: Sequence[str]) -> tuple[float, int]:
    """One `send_each_async` of len(tokens) messages with the SDK's own transport."""
    app = _sdk_app(account, endpoint, "bench-sdk-async")

    async def run() -> tuple[float, int]:
        await messaging.send_each_async([_message(tokens[0])], app=app)  # token, connection
        start = time.monotonic()
        answer = await messaging.send_each_async([_message(t) for t in tokens[1:]], app=app)
        elapsed = time.monotonic() - start
        # Closed in this loop: delete_app would close it in a new one (asyncio.run), where
        # the connections of this one cannot be closed.
        await messaging._get_messaging_service(app)._async_client.aclose()
        return elapsed, answer.success_count

    try:
        # Its own event loop, in a thread: the SDK's auth flow refreshes tokens synchronously.
        return asyncio.run(run())
    finally:
        firebase_admin.delete_app(app)


class _NoStore:
    async def remove_fcm_token(self, installation_id: str, token: str, reason: str) -> bool:
        return False


async def herald_channel(
    account: Path, endpoint: str, tokens: Sequence[str], meter: Meter
) -> tuple[float, Counter[str], Any]:
    """Herald's FcmChannel: all sends at once, as the worker issues them."""
    channel = FcmChannel(_NoStore(), account, endpoint)  # type: ignore[arg-type]
    now = time.time()
    record = NotificationRecord(
        "bench-1",
        1,
        "hash",
        StoredEvent.from_document({**EVENT, "id": "bench-1"}),
        EVENT["type"],
        len(tokens),
        1,
        None,
        now,
        now,
    )

    def job(index: int) -> DeliveryJob:
        return DeliveryJob(index, "bench-1", f"u{index}", "mobile", f"i{index}", 0, 0, None)

    def device(index: int, token: str) -> DeviceRecord:
        return DeviceRecord(f"i{index}", f"u{index}", "android", token, None, {}, True, now, now)

    try:
        warm = await channel.send(job(0), device(0, tokens[0]), record)  # token, connection
        if warm.status != "delivered":
            raise BenchError(f"the channel could not send: {warm}")
        meter.start()
        start = time.monotonic()
        results = await asyncio.gather(
            *(channel.send(job(i), device(i, t), record) for i, t in enumerate(tokens[1:], 1))
        )
        elapsed = time.monotonic() - start
        meter.stop()
        return elapsed, Counter(r.status for r in results), channel.stats
    finally:
        await channel.aclose()


async def seed(db_path: Path, tokens: Sequence[str]) -> None:
    stores = seeding_stores(db_path, synchronous="NORMAL")
    await stores.open()
    try:
        users, devices = stores.users, stores.devices
        for index, token in enumerate(tokens):
            user = f"emulator:bench-{index:06d}"
            await users.upsert_user(UserRecord(user, "emulator"))
            await devices.upsert(
                DeviceRegistration(f"inst-{index:06d}", user, "android", token, None, {})
            )
    finally:
        await stores.close()


async def end_to_end(
    account: Path,
    standin: Standin,
    tokens: Sequence[str],
    workers: int | None,
    workdir: Path,
    meter: Meter,
) -> tuple[float, dict[str, Any]]:
    data_dir = workdir / "herald-data"
    data_dir.mkdir()
    await seed(data_dir / "herald.db", tokens)
    env = {"FIREBASE_CREDENTIALS": str(account), "FCM_ENDPOINT": standin.url}
    if workers:
        env["HERALD_WORKERS"] = str(workers)
    herald, url = await start_herald(data_dir, workdir, standin.http, env)
    try:
        await standin.reset()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        meter.sender_pid = herald.pid
        meter.start()
        posted = time.monotonic()
        async with standin.http.post(
            url + "/api/notifications", json=EVENT, headers=headers
        ) as response:
            if response.status != 202:
                raise BenchError(f"POST answered {response.status}: {await response.text()}")
            accepted = await response.json()
        stats = await standin.wait_accepted(len(tokens))
        meter.stop()
        status: dict[str, Any] = {}
        for _ in range(600):
            async with standin.http.get(
                f"{url}/api/notifications/{accepted['id']}", headers=headers
            ) as response:
                status.update(await response.json())
            if status.get("status") == "completed":
                break
            await asyncio.sleep(0.1)
        return stats["lastAt"] - posted, status
    finally:
        await herald.stop()


class Meter:
    """CPU seconds of the sender (this process, or Herald's), of the stand-in and of the rest
    of the machine between `start()` and `stop()`: a shared machine moves wall-clock rates."""

    def __init__(self, sender_pid: int | None, standin_pid: int) -> None:
        self.sender_pid = sender_pid
        self.standin_pid = standin_pid
        self._marks: tuple[float, ...] = ()
        self.sender = self.standin = self.others = self.wall = 0.0

    def _read(self) -> tuple[float, ...]:
        sender = time.process_time() if self.sender_pid is None else cpu_seconds(self.sender_pid)
        return (sender, cpu_seconds(self.standin_pid), machine_busy_seconds(), time.monotonic())

    def start(self) -> None:
        self._marks = self._read()

    def stop(self) -> None:
        deltas = [b - a for a, b in zip(self._marks, self._read(), strict=True)]
        self.sender, self.standin, busy, self.wall = deltas
        self.others = max(0.0, busy - self.sender - self.standin)

    def line(self, count: int, who: str) -> str:
        return (
            f"    CPU per message: {who} {self.sender / count * 1e6:,.0f} µs, stand-in "
            f"{self.standin / count * 1e6:,.0f} µs; other processes used "
            f"{self.others / self.wall:.2f} cores meanwhile"
        )


def _row(label: str, count: int, seconds: float, note: str = "") -> str:
    rate = count / seconds if seconds > 0 else float("inf")
    return f"  {label:<44} {count:>6,} msgs {seconds:>8.2f} s {rate:>9,.0f}/s  {note}"


async def _main(args: argparse.Namespace) -> int:
    print(
        f"FCM benchmark — {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"firebase-admin {firebase_admin.__version__}; "
        f"started {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"
    )
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-fcm-"))
    account = workdir / "service-account.json"
    broken = False
    child, url = await start_sink(
        ["-m", "tests.peers.fcm", "--service-account", str(account), "--quiet"], workdir, "fcm"
    )
    tokens = [fcm_token(i) for i in range(args.tokens)]
    lines: list[str] = []
    herald_rates: list[float] = []
    e2e_rates: list[float] = []
    try:
        async with aiohttp.ClientSession(trust_env=False) as http:
            standin = Standin(url, http)

            sample = tokens[: args.sdk_sample + 1]
            seconds, sent = await asyncio.to_thread(sdk_loop, account, url, sample)
            baseline = sent / seconds
            lines.append(_row("SDK: sequential messaging.send", sent, seconds, "(baseline)"))

            if args.sdk_async_sample:
                sample = tokens[: args.sdk_async_sample + 1]
                seconds, ok = await asyncio.to_thread(sdk_send_each_async, account, url, sample)
                lines.append(
                    _row(
                        "SDK: one send_each_async, its httpx transport",
                        ok,
                        seconds,
                        f"{ok / seconds / baseline:.1f}x baseline",
                    )
                )

            await standin.reset()
            meter = Meter(None, child.pid)
            seconds, results, stats = await herald_channel(account, url, tokens, meter)
            sent = results["delivered"]
            herald_rates.append(sent / seconds)
            lines.append(
                _row(
                    "Herald: FcmChannel.send x N (micro-batched)",
                    sent,
                    seconds,
                    f"{sent / seconds / baseline:.1f}x baseline; batches {stats.batches}, "
                    f"largest {stats.largest_batch}",
                )
            )
            lines.append(meter.line(sent, "channel"))
            if results["delivered"] != len(tokens) - 1:
                broken = True
                lines.append(f"    results: {dict(results)}")

            for workers in [] if args.skip_e2e else args.workers:
                meter = Meter(None, child.pid)
                run_dir = workdir / f"e2e-{workers}"
                run_dir.mkdir()
                seconds, status = await end_to_end(
                    account, standin, tokens, workers, run_dir, meter
                )
                delivered = status.get("channels", {}).get("mobile", {}).get("delivered", 0)
                e2e_rates.append(len(tokens) / seconds)
                lines.append(
                    _row(
                        f"Herald end to end (app.py, {workers} workers)",
                        len(tokens),
                        seconds,
                        f"{len(tokens) / seconds / baseline:.1f}x baseline; "
                        f"status {status.get('status')}, delivered {delivered}",
                    )
                )
                lines.append(meter.line(len(tokens), "Herald"))
                if delivered != len(tokens):
                    broken = True
                    lines.append(f"    status: {json.dumps(status)[:500]}")
    except BenchError as exc:
        broken = True
        lines.append(f"BROKEN: {exc}")
    finally:
        await child.stop()
    print(f"N = {args.tokens:,} tokens, stand-in {url}")
    print("\n".join(lines))
    verdicts = [("channel", herald_rates[:1])]
    if e2e_rates:
        verdicts.append(("best end-to-end run", [max(e2e_rates)]))
    for label, rates in verdicts:
        ok = bool(rates) and rates[0] >= RATE_TARGET
        rate = rates[0] if rates else 0.0
        print(
            f"Target: Herald >= {RATE_TARGET:,.0f} messages/s, {label}: "
            f"{'PASS' if ok else 'FAIL'} ({rate:,.0f}/s)"
        )
    if broken:
        print(f"(logs kept in {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if broken else 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="FCM benchmark (see the module docstring).")
    parser.add_argument("--tokens", type=int, default=5_000, help="N device tokens")
    parser.add_argument("--sdk-sample", type=int, default=None, help="K for the SDK loop (N)")
    parser.add_argument(
        "--sdk-async-sample", type=int, default=500, help="M for send_each_async (0: skip)"
    )
    parser.add_argument(
        "--workers",
        default="64,512",
        help="HERALD_WORKERS of the end-to-end runs, comma-separated (64 is Herald's default)",
    )
    parser.add_argument("--skip-e2e", action="store_true", help="no app.py run")
    args = parser.parse_args(argv)
    if args.tokens < 2:
        parser.error("--tokens must be at least 2")
    args.sdk_sample = min(args.sdk_sample or args.tokens, args.tokens) - 1
    try:
        args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    except ValueError:
        parser.error("--workers takes numbers, e.g. 64,512")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    for name in [k for k in os.environ if "proxy" in k.lower()]:
        del os.environ[name]  # the SDK's HTTP stacks honour proxies; keep it on loopback
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    return asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
