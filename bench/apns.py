"""APNs benchmark: pushes/s to a stand-in of the APNs provider API for N iOS devices.

Usage::

    .venv/bin/python bench/apns.py [--devices N] [--library-sample K] [--workers W1,W2]
                                   [--skip-e2e]

Method
------
Everything runs on this host over loopback (127.0.0.1), proxy variables removed. The stand-in
(``python -m tests.peers.apns``: TLS + HTTP/2, the ES256 provider token checked against its test
key, headers and payload size checked) runs as its own process and counts what it accepts,
with the ``time.monotonic()`` of the first and last accepted push (CLOCK_MONOTONIC is shared by
all processes on Linux). Each push is the same notification (title, text, link, data) to a
distinct device token.

1. **Library loop** (the baseline, same run): aioapns 4.0 as its documentation shows it, a
   sequential loop of ``APNs.send_notification`` for K devices (default K = N). aioapns has no
   setting for the host: for this measurement only, its production protocol class is
   subclassed with the stand-in's host and port (one of the reasons Herald does not use it).
2. **Herald's channel**: ``delivery.apns.ApnsChannel.send`` for all N devices at once, as the
   delivery worker calls it (one task per delivery), over Herald's HTTP/2 client.
3. **Herald end to end** (unless ``--skip-e2e``): N users with one iOS device each (an
   ``apnsToken`` only) are written into a fresh SQLite file through Herald's stores,
   ``python app.py`` starts with the APNS_* settings pointing at the stand-in, and one
   ``{"all": true}`` event is posted; the clock runs from just before the POST to the
   stand-in's last accepted push (expansion, outbox, badge counts, worker, settling included).
   Once per HERALD_WORKERS value W (default: Herald's 64, and 512).

Rates are ``count / (last accepted - start)``; CPU per push (sender, stand-in) and what other
processes used are printed too, since this machine is shared. Target: Herald end to end
>= 2,000 pushes/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import ssl
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

from aioapns import APNs, NotificationRequest, PushType  # noqa: E402
from aioapns.connection import APNsProductionClientProtocol  # noqa: E402

from bench.broadcast import (  # noqa: E402
    API_KEY,
    BenchError,
    seeding_stores,
    start_herald,
    start_sink,
)
from bench.fcm import Meter, Standin  # noqa: E402
from delivery.apns import ApnsChannel, ApnsConfig, ApnsTarget, build_payload  # noqa: E402
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


def device_token(index: int) -> str:
    return f"{index:08x}" + secrets.token_hex(28)


async def library_loop(info: dict[str, Any], tokens: Sequence[str]) -> tuple[float, int]:
    """Sequential `APNs.send_notification`; (seconds from the first send to the last answer,
    pushes accepted)."""
    host, port = info["endpoint"].removeprefix("https://").rsplit(":", 1)

    class StandIn(APNsProductionClientProtocol):
        APNS_SERVER = host
        APNS_PORT = int(port)

    client = APNs(
        key=info["key"],
        key_id=info["keyId"],
        team_id=info["teamId"],
        topic=info["bundleId"],
        ssl_context=ssl.create_default_context(cafile=info["caFile"]),
    )
    client.pool.protocol_class = StandIn
    notice = StoredEvent.from_document({**EVENT, "id": "bench-1"})
    payload = json.loads(build_payload(notice, "bench-1", 1, badge=1))

    def request(token: str) -> NotificationRequest:
        return NotificationRequest(
            device_token=token, message=payload, push_type=PushType.ALERT, priority=10,
            collapse_key="bench-1",
        )

    try:
        first = await client.send_notification(request(tokens[0]))  # connection, token
        if not first.is_successful:
            raise BenchError(f"aioapns could not send: {first.status} {first.description}")
        start = time.monotonic()
        ok = 0
        for token in tokens[1:]:
            ok += (await client.send_notification(request(token))).is_successful
        return time.monotonic() - start, ok
    finally:
        client.pool.close()


class _NoStore:
    async def remove_apns_token(self, installation_id: str, token: str, reason: str) -> bool:
        return False

    async def unread_counts(self, user_ids: Sequence[str]) -> dict[str, int]:
        return {}


def _config(info: dict[str, Any]) -> ApnsConfig:
    return ApnsConfig(
        key_file=Path(info["keyFile"]),
        key_id=info["keyId"],
        team_id=info["teamId"],
        bundle_id=info["bundleId"],
        endpoint=info["endpoint"],
        sandbox_endpoint=info["endpoint"],
        ca_file=Path(info["caFile"]),
    )


async def herald_channel(
    info: dict[str, Any], tokens: Sequence[str], meter: Meter
) -> tuple[float, Counter[str]]:
    """Herald's ApnsChannel: all sends at once, as the worker issues them."""
    store = _NoStore()
    channel = ApnsChannel(store, store, _config(info))  # type: ignore[arg-type]
    now = time.time()
    record = NotificationRecord(
        "bench-1", 1, "hash", StoredEvent.from_document({**EVENT, "id": "bench-1"}),
        EVENT["type"], len(tokens), 1, None, now, now,
    )

    def job(index: int) -> DeliveryJob:
        return DeliveryJob(index, "bench-1", f"u{index}", "mobile", f"i{index}", 0, 0, None)

    def target(index: int, token: str) -> ApnsTarget:
        device = DeviceRecord(f"i{index}", f"u{index}", "ios", None, token, {}, True, now, now)
        return ApnsTarget(device, 1)

    try:
        warm = await channel.send(job(0), target(0, tokens[0]), record)
        if warm.status != "delivered":
            raise BenchError(f"the channel could not send: {warm}")
        meter.start()
        start = time.monotonic()
        results = await asyncio.gather(
            *(channel.send(job(i), target(i, t), record) for i, t in enumerate(tokens[1:], 1))
        )
        elapsed = time.monotonic() - start
        meter.stop()
        return elapsed, Counter(r.status for r in results)
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
                DeviceRegistration(
                    f"inst-{index:06d}", user, "ios", None, token, {"distribution": "store"}
                )
            )
    finally:
        await stores.close()


async def end_to_end(
    info: dict[str, Any],
    standin: Standin,
    tokens: Sequence[str],
    workers: int | None,
    workdir: Path,
    meter: Meter,
) -> tuple[float, dict[str, Any]]:
    data_dir = workdir / "herald-data"
    data_dir.mkdir()
    await seed(data_dir / "herald.db", tokens)
    env = {
        "APNS_KEY_FILE": info["keyFile"],
        "APNS_KEY_ID": info["keyId"],
        "APNS_TEAM_ID": info["teamId"],
        "APNS_BUNDLE_ID": info["bundleId"],
        "APNS_ENDPOINT": info["endpoint"],
        "APNS_SANDBOX_ENDPOINT": info["endpoint"],
        "APNS_CA_FILE": info["caFile"],
    }
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
        status["providerTokens"] = stats["providerTokens"]
        status["connections"] = stats["connections"]
        return stats["lastAt"] - posted, status
    finally:
        await herald.stop()


def _row(label: str, count: int, seconds: float, note: str = "") -> str:
    rate = count / seconds if seconds > 0 else float("inf")
    return f"  {label:<44} {count:>6,} push {seconds:>8.2f} s {rate:>9,.0f}/s  {note}"


async def _main(args: argparse.Namespace) -> int:
    print(
        f"APNs benchmark — {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"started {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"
    )
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-apns-"))
    broken = False
    child, url = await start_sink(
        ["-m", "tests.peers.apns", "--dir", str(workdir / "standin"), "--quiet"], workdir, "apns"
    )
    tokens = [device_token(i) for i in range(args.devices)]
    lines: list[str] = []
    channel_rates: list[float] = []
    e2e_rates: list[float] = []
    try:
        async with aiohttp.ClientSession(trust_env=False) as http:
            standin = Standin(url, http)
            async with http.get(url + "/_info") as response:
                info: dict[str, Any] = await response.json()
            info["key"] = Path(info["keyFile"]).read_text()  # noqa: ASYNC240 (once, small)

            seconds, sent = await library_loop(info, tokens[: args.library_sample + 1])
            baseline = sent / seconds
            lines.append(_row("aioapns: sequential send_notification", sent, seconds,
                              "(baseline)"))

            await standin.reset()
            meter = Meter(None, child.pid)
            seconds, results = await herald_channel(info, tokens, meter)
            sent = results["delivered"]
            channel_rates.append(sent / seconds)
            lines.append(
                _row("Herald: ApnsChannel.send x N at once", sent, seconds,
                     f"{sent / seconds / baseline:.1f}x baseline")
            )
            lines.append(meter.line(sent, "channel").replace("message", "push"))
            if sent != len(tokens) - 1:
                broken = True
                lines.append(f"    results: {dict(results)}")

            for workers in [] if args.skip_e2e else args.workers:
                meter = Meter(None, child.pid)
                run_dir = workdir / f"e2e-{workers}"
                run_dir.mkdir()
                seconds, status = await end_to_end(info, standin, tokens, workers, run_dir, meter)
                delivered = status.get("channels", {}).get("mobile", {}).get("delivered", 0)
                e2e_rates.append(len(tokens) / seconds)
                lines.append(
                    _row(
                        f"Herald end to end (app.py, {workers} workers)",
                        len(tokens),
                        seconds,
                        f"{len(tokens) / seconds / baseline:.1f}x baseline; "
                        f"status {status.get('status')}, delivered {delivered}, "
                        f"provider tokens {status['providerTokens']}, "
                        f"connections {status['connections']}",
                    )
                )
                lines.append(meter.line(len(tokens), "Herald").replace("message", "push"))
                if delivered != len(tokens):
                    broken = True
                    lines.append(f"    status: {json.dumps(status)[:500]}")
    except BenchError as exc:
        broken = True
        lines.append(f"BROKEN: {exc}")
    finally:
        await child.stop()
    print(f"N = {args.devices:,} devices, stand-in control {url}")
    print("\n".join(lines))
    verdicts = [("channel", channel_rates[:1])]
    if e2e_rates:
        verdicts.append(("best end-to-end run", [max(e2e_rates)]))
    for label, rates in verdicts:
        ok = bool(rates) and rates[0] >= RATE_TARGET
        rate = rates[0] if rates else 0.0
        print(
            f"Target: Herald >= {RATE_TARGET:,.0f} pushes/s, {label}: "
            f"{'PASS' if ok else 'FAIL'} ({rate:,.0f}/s)"
        )
    if broken:
        print(f"(logs kept in {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if broken else 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="APNs benchmark (see the module docstring).")
    parser.add_argument("--devices", type=int, default=5_000, help="N iOS devices")
    parser.add_argument(
        "--library-sample", type=int, default=None, help="K for the aioapns loop (N)"
    )
    parser.add_argument(
        "--workers",
        default="64,512",
        help="HERALD_WORKERS of the end-to-end runs, comma-separated (64 is Herald's default)",
    )
    parser.add_argument("--skip-e2e", action="store_true", help="no app.py run")
    args = parser.parse_args(argv)
    if args.devices < 2:
        parser.error("--devices must be at least 2")
    args.library_sample = min(args.library_sample or args.devices, args.devices) - 1
    try:
        args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    except ValueError:
        parser.error("--workers takes numbers, e.g. 64,512")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    for name in [k for k in os.environ if "proxy" in k.lower()]:
        del os.environ[name]
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    return asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
