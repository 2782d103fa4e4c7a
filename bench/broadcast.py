"""Broadcast benchmark: one `{"recipients": {"all": true}}` event fanned out to N conversations.

Usage::

    .venv/bin/python bench/broadcast.py [--users N] [--mode unthrottled|teams|both]
                                        [--sdk-sample K] [--teams-users N] [--profile FILE]
                                        [--env HERALD_NAME=VALUE ...]

``--users`` sets N for both modes unless ``--teams-users`` is given; ``--env`` passes extra
settings to Herald (for experiments; the defaults are what is measured).

Method
------
Every process runs on this host and talks over loopback only (127.0.0.1); proxy variables are
removed from the environment of the driver and of every child.

*Unthrottled* (default N = 10,000). ``bench/sink.py`` -- a tiny aiohttp Bot Connector sink that
records the ``time.monotonic()`` arrival time and conversation id of every activity -- runs as
its own process, so it has the second core to itself. N Emulator users (channelId ``emulator``,
so Herald's token buckets do not apply) are written into a fresh SQLite file *before* Herald
starts, through Herald's own stores (storage/backends.py ``sqlite_stores``); each reference is
what ``proactive.identity.stored_reference`` returns for the Emulator's ``conversationUpdate``
activity (deserialised by botbuilder, as ``/api/messages`` does), with the sink as serviceUrl.
Herald then starts as ``python app.py`` (HERALD_DATA_DIR, HERALD_API_KEYS, PORT, HOST=127.0.0.1,
HERALD_LOG_LEVEL=WARNING). The driver takes ``t_post = time.monotonic()`` just before it POSTs
one event and then waits until the sink holds N messages and ``GET /api/notifications/{id}``
says ``completed``. ``time.monotonic()`` is ``CLOCK_MONOTONIC``, shared by all processes on
Linux, so for each message ``latency = arrival - t_post``; the rate is ``N / (last arrival -
t_post)`` (expansion, queueing and settling included). Peak RSS is Herald's ``VmHWM`` from
``/proc/<pid>/status``. Then, in the same run, with Herald stopped, the driver fans the same
Adaptive Card activity (``dialogs.cards.notification_activity`` of the same event) out to the
first K of the same stored references with a plain loop of the SDK's
``CloudAdapter.continue_conversation`` (``ConfigurationBotFrameworkAuthentication``, empty app
id) against the same sink; its rate is ``K / (last arrival - loop start)``. The SDK's first send
goes to the conversation Herald reached first, and the two activities must be equal field for
field except the per-send ``replyToId``. A message is *lost* when a seeded conversation never
received it (compared by conversation id); repeats are counted as duplicates. Targets: >= 2,000
deliveries/s and >= 30x the SDK loop.

This machine is shared, so wall-clock rates move with whatever else runs. Alongside them the
table shows CPU seconds from ``/proc/<pid>/stat`` over the same window: Herald's per delivery
(whole process, and its event-loop thread alone, whose cost caps the rate of one process), the
sink's per message (its headroom), this driver's per SDK send, and the CPU used by every other
process on the machine (``/proc/stat`` busy time minus ours), with a warning when that exceeds
0.15 cores.

*Teams* (default N = 1,000). The sink is ``python -m tests.peers.connector --teams-limits``
(token buckets of 50/s per tenant and 7/s per conversation, each starting full, i.e. a burst of
50 and 7; 429 + Retry-After beyond). N Teams users of one tenant are seeded (channelId
``msteams``, ``conversation.tenantId`` and ``channelData.tenant.id`` set, ids ``a:1...``) and
Herald runs with its default HERALD_TENANT_RATE=50 and HERALD_CONVERSATION_RATE=7. In any window
``[t_first, t_last]`` the sink can accept at most ``burst + rate * (t_last - t_first)`` messages
of one tenant, so the share of the allowed rate is::

    share = accepted / (50 + 50 * (lastAcceptAt - firstAcceptAt))

which is 100 % for a sender that uses the initial burst and then every token the moment it
refills. The same share measured from the POST (``50 + 50 * (lastAcceptAt - t_post)``) is shown
too: it also charges Herald's time to first send. Target: share >= 99 %, 0 lost.

``--profile FILE`` samples Herald with py-spy (``py-spy record --pid``, raw collapsed stacks,
idle threads excluded) during the unthrottled fan-out and prints the hotspots; the profiled
run's own numbers are slowed by the sampler, so profile in a separate invocation when the
headline numbers matter. PASS/FAIL is printed per target; the exit status is 1 only when
something broke or messages were lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from botbuilder.schema import Activity  # noqa: E402

from bench.profile_summary import load as load_profile  # noqa: E402
from bench.profile_summary import render as render_profile  # noqa: E402
from notifications.event import Event  # noqa: E402
from proactive.identity import stored_reference, user_key  # noqa: E402
from storage.backends import Stores, sqlite_stores  # noqa: E402
from storage.records import StoredReference, UserRecord  # noqa: E402
from storage.sqlite import SqliteDatabase  # noqa: E402

PYTHON = sys.executable
API_KEY = "bench-" + uuid.uuid4().hex
BOT_ID = "herald-bot"
TENANT = "bench-tenant-0001"
TEAMS_TENANT_RATE = 50.0  # Herald's default HERALD_TENANT_RATE and the sink's --per-tenant
RATE_TARGET = 2_000.0
RATIO_TARGET = 30.0
SHARE_TARGET = 0.99
STALL_SECONDS = 60.0  # no new message for this long: the rest is counted lost

EVENT: dict[str, Any] = {
    "type": "bench.broadcast",
    "title": "Quarterly security training is due",
    "text": "Please complete the 20-minute course by Friday. It covers phishing and passwords.",
    "severity": "warning",
    "url": "https://learning.example.com/courses/security-2025",
    "recipients": {"all": True},
}

Kind = Literal["emulator", "msteams"]


class BenchError(RuntimeError):
    """A step of the benchmark broke (not merely missed a target)."""


# --------------------------------------------------------------------------- processes


def _loopback_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The driver's environment without proxies, and without Herald or Bot Framework settings
    (a stray MicrosoftAppId would leave Emulator mode): Herald runs on its defaults + `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower()
        and not k.startswith(("HERALD_", "Microsoft"))
        and k not in ("HOST", "PORT")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A child process whose output goes to a log file."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


async def start_sink(args: Sequence[str], workdir: Path, name: str) -> tuple[Child, str]:
    """Start a sink that prints `LISTENING <url>` on stdout; return it and its URL."""
    log = workdir / f"{name}.log"
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            PYTHON,
            *args,
            cwd=ROOT,
            env=_loopback_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    child = Child(name, process, log)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
    except TimeoutError:
        await child.stop()
        raise BenchError(f"{name} did not start:\n{child.tail()}") from None
    text = line.decode().strip()
    if not text.startswith("LISTENING "):
        await child.stop()
        raise BenchError(f"{name} did not start ({text!r}):\n{child.tail()}")
    url = text.split(" ", 1)[1]
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        await child.stop()
        raise BenchError(f"{name} listens on a non-loopback address: {url}")
    return child, url


async def start_herald(
    data_dir: Path, workdir: Path, http: aiohttp.ClientSession, env: dict[str, str]
) -> tuple[Child, str]:
    """`python app.py` on a free loopback port with the benchmark's data dir and API key."""
    port = _free_port()
    log = workdir / f"herald-{port}.log"
    with log.open("wb") as out:
        # cwd is the data dir so that no `.env` file of a developer's checkout is read.
        process = await asyncio.create_subprocess_exec(
            PYTHON,
            str(ROOT / "app.py"),
            cwd=data_dir,
            env=_loopback_env(
                {
                    "HERALD_DATA_DIR": str(data_dir),
                    "HERALD_API_KEYS": API_KEY,
                    "PORT": str(port),
                    "HOST": "127.0.0.1",
                    "HERALD_LOG_LEVEL": "WARNING",
                    **env,
                }
            ),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    child = Child("herald", process, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BenchError(f"Herald exited with {process.returncode}:\n{child.tail()}")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url + "/readyz") as response:
                if response.status == 200:
                    return child, url
        await asyncio.sleep(0.1)
    await child.stop()
    raise BenchError(f"Herald was not ready within 60 s:\n{child.tail()}")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (all threads) or of one of its threads, in seconds."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat), to spot other load."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


@dataclass
class CpuMeter:
    """CPU seconds used by Herald (all threads, and its event-loop thread), the sink, this
    driver and everything else on the machine between `start()` and `stop()`."""

    herald_pid: int
    sink_pid: int
    herald: float = 0.0
    herald_loop: float = 0.0
    sink: float = 0.0
    driver: float = 0.0
    others: float = 0.0
    wall: float = 0.0
    _marks: tuple[float, ...] = ()

    def _read(self) -> tuple[float, ...]:
        return (
            cpu_seconds(self.herald_pid),
            cpu_seconds(self.herald_pid, self.herald_pid),
            cpu_seconds(self.sink_pid),
            time.process_time(),
            machine_busy_seconds(),
            time.monotonic(),
        )

    def start(self) -> None:
        self._marks = self._read()

    def stop(self) -> None:
        now = self._read()
        d = [b - a for a, b in zip(self._marks, now, strict=True)]
        self.herald, self.herald_loop, self.sink, self.driver, busy, self.wall = d
        self.others = max(0.0, busy - self.herald - self.sink - self.driver)


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set size) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- seeding


def _activity(kind: Kind, index: int, service_url: str) -> dict[str, Any]:
    """The conversationUpdate the Emulator (or Teams) sends when a user opens the chat."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if kind == "emulator":
        user = {"id": str(uuid.uuid4()), "name": f"User {index}", "role": "user"}
        conversation: dict[str, Any] = {"id": f"{uuid.uuid4()}|livechat"}
        bot = {"id": BOT_ID, "name": "Herald", "role": "bot"}
    else:
        user = {
            "id": f"29:1{uuid.uuid4().hex}",
            "name": f"User {index}",
            "aadObjectId": str(uuid.uuid4()),
        }
        conversation = {
            "id": f"a:1{uuid.uuid4().hex}",
            "conversationType": "personal",
            "tenantId": TENANT,
        }
        bot = {"id": f"28:{BOT_ID}", "name": "Herald"}
    activity: dict[str, Any] = {
        "type": "conversationUpdate",
        "id": f"seed-{index}",
        "channelId": kind,
        "serviceUrl": service_url,
        "timestamp": now,
        "from": user,
        "recipient": bot,
        "conversation": conversation,
        "membersAdded": [{"id": bot["id"], "name": "Herald"}, {"id": user["id"], "name": "x"}],
        "locale": "en-US",
    }
    if kind == "msteams":
        activity["channelData"] = {"tenant": {"id": TENANT}}
    return activity


SEED_RETENTION_SECONDS = 90 * 86400.0
"""Herald's default HERALD_HISTORY_DAYS: seeding reads no history back, Herald reopens the file
with its own settings."""


def seeding_stores(db_path: Path, *, synchronous: str) -> Stores:
    """Herald's SQLite stores as `create_app` wires them (storage/backends.py), over a bench's
    file: the benches seed through them so the rows are exactly Herald's. `synchronous` below
    FULL only skips the fsync per commit while seeding."""
    return sqlite_stores(
        SqliteDatabase(db_path, synchronous=synchronous), retention_seconds=SEED_RETENTION_SECONDS
    )


async def seed(db_path: Path, kind: Kind, n: int, service_url: str) -> list[StoredReference]:
    """Write N users and their conversation references with Herald's own stores.

    `synchronous=OFF` only for the seeding connection: the rows are identical, they are just
    not fsynced one by one (Herald reopens the file with its normal settings).
    """
    stores = seeding_stores(db_path, synchronous="OFF")
    await stores.open()
    users, conversations = stores.users, stores.conversations
    references: list[StoredReference] = []
    try:
        for index in range(n):
            activity = Activity().deserialize(_activity(kind, index, service_url))
            user_id = user_key(activity)
            if user_id is None:
                raise BenchError("seed activity has no user")
            reference = stored_reference(activity, user_id)
            await users.upsert_user(
                UserRecord(
                    user_id=user_id,
                    channel_id=kind,
                    name=activity.from_property.name,
                    tenant_id=reference.tenant_id,
                )
            )
            await conversations.upsert(reference)
            references.append(reference)
        if await users.count() != n:
            raise BenchError("seeding wrote the wrong number of users")
    finally:
        await stores.close()
    return references


# --------------------------------------------------------------------------- measuring


@dataclass
class FanoutResult:
    """One Herald fan-out as seen by the sink and the status API."""

    n: int
    t_post: float
    arrivals: list[float]
    conversations: list[str]
    status: dict[str, Any]
    peak_rss: float | None
    first_body: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def received(self) -> int:
        return len(self.arrivals)

    @property
    def last(self) -> float:
        return max(self.arrivals) if self.arrivals else float("nan")

    @property
    def rate(self) -> float:
        return self.n / (self.last - self.t_post) if self.arrivals else 0.0

    def latency(self, q: float) -> float:
        ordered = sorted(t - self.t_post for t in self.arrivals)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def lost_and_duplicates(expected: Sequence[str], received: Sequence[str]) -> tuple[int, int]:
    counts = Counter(received)
    lost = sum(1 for conversation in expected if conversation not in counts)
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    return lost, duplicates


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with http.request(method, url, **kw) as response:
        if response.status >= 400:
            raise BenchError(f"{method} {url} answered {response.status}: {await response.text()}")
        return await response.json(content_type=None)


async def fanout(
    http: aiohttp.ClientSession,
    herald: Child,
    herald_url: str,
    sink_url: str,
    n: int,
    meter: CpuMeter,
) -> tuple[FanoutResult, str]:
    """POST one broadcast; wait for N messages at the sink and `completed` in Herald."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    meter.start()
    t_post = time.monotonic()
    async with http.post(herald_url + "/api/notifications", json=EVENT, headers=auth) as response:
        body = await response.json(content_type=None)
        if response.status != 202:
            raise BenchError(f"POST /api/notifications answered {response.status}: {body}")
    notification_id = str(body["id"])
    if body.get("recipients") != n:
        raise BenchError(f"Herald counted {body.get('recipients')} recipients, not {n}")
    seen, progress_at = -1, time.monotonic()
    while True:
        stats = await _json(http, "GET", sink_url + "/_stats")
        accepted = int(stats["accepted"])
        if accepted >= n:
            break
        if accepted != seen:
            seen, progress_at = accepted, time.monotonic()
        elif time.monotonic() - progress_at > STALL_SECONDS:
            break
        if herald.process.returncode is not None:
            raise BenchError(f"Herald died during the fan-out:\n{herald.tail()}")
        await asyncio.sleep(0.05)
    meter.stop()
    status_url = f"{herald_url}/api/notifications/{notification_id}"
    deadline = time.monotonic() + STALL_SECONDS
    while True:
        status = await _json(http, "GET", status_url, headers=auth)
        if status["status"] == "completed" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    result = FanoutResult(n, t_post, [], [], status, peak_rss_mib(herald.pid), stats=stats)
    return result, notification_id


async def collect_arrivals(
    http: aiohttp.ClientSession, sink_url: str, result: FanoutResult
) -> None:
    data = await _json(http, "GET", sink_url + "/_arrivals")
    result.arrivals = [float(t) for t in data["times"]]
    result.conversations = [str(c) for c in data["conversations"]]
    result.first_body = data.get("firstBody")


@dataclass
class SdkResult:
    """The SDK loop: wall time to its last delivery and the CPU this process spent on it."""

    k: int
    seconds: float
    received: int
    lost: int
    duplicates: int
    first_body: dict[str, Any] | None
    cpu: float
    others: float

    @property
    def rate(self) -> float:
        return self.k / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _SdkConfig:
    """The attribute names botbuilder's configuration-based authentication reads."""

    APP_ID: str = ""
    APP_PASSWORD: str = ""
    APP_TYPE: str = "MultiTenant"
    APP_TENANTID: str = ""


async def sdk_loop(
    http: aiohttp.ClientSession,
    sink: Child,
    sink_url: str,
    references: Sequence[StoredReference],
    value: dict[str, Any],
) -> SdkResult:
    """The baseline: the SDK's own proactive path, one `continue_conversation` per user."""
    from botbuilder.core import TurnContext
    from botbuilder.integration.aiohttp import (
        CloudAdapter,
        ConfigurationBotFrameworkAuthentication,
    )
    from botbuilder.schema import ConversationReference

    from dialogs.cards import notification_activity
    from notifications.event import Notice

    notice = Notice.model_validate(value)  # what the bot's turn reads, parsed once
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_SdkConfig()))
    refs = [ConversationReference().deserialize(r.reference) for r in references]
    failures: list[BaseException] = []

    async def callback(turn_context: TurnContext) -> None:
        await turn_context.send_activity(notification_activity(notice))

    async def on_error(turn_context: TurnContext, error: Exception) -> None:
        failures.append(error)

    adapter.on_turn_error = on_error
    await _json(http, "POST", sink_url + "/_reset")
    cpu0, sink0, busy0 = time.process_time(), cpu_seconds(sink.pid), machine_busy_seconds()
    start = time.monotonic()
    for ref in refs:
        await adapter.continue_conversation(ref, callback, "")
    cpu = time.process_time() - cpu0
    others = machine_busy_seconds() - busy0 - cpu - (cpu_seconds(sink.pid) - sink0)
    data = await _json(http, "GET", sink_url + "/_arrivals")
    times = [float(t) for t in data["times"]]
    if failures:
        raise BenchError(f"SDK loop failed {len(failures)} times, first: {failures[0]!r}")
    lost, duplicates = lost_and_duplicates(
        [r.conversation_id for r in references], data["conversations"]
    )
    seconds = (max(times) - start) if times else 0.0
    return SdkResult(
        len(refs), seconds, len(times), lost, duplicates, data.get("firstBody"), cpu, others
    )


# --------------------------------------------------------------------------- profiling


@contextlib.asynccontextmanager
async def profiled(pid: int, out: Path | None, workdir: Path) -> AsyncIterator[None]:
    """Sample `pid` with py-spy while the body runs (no-op without `out`)."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if spy is None:
        raise BenchError("--profile needs py-spy: .venv/bin/python -m pip install py-spy")
    log = workdir / "py-spy.log"
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--threads",
            "--output",
            str(out),
            stdout=err,
            stderr=asyncio.subprocess.STDOUT,
        )
    await asyncio.sleep(1.0)  # let py-spy attach before the work starts
    if process.returncode is not None:
        raise BenchError(f"py-spy could not attach: {log.read_text(errors='replace')}")
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


# --------------------------------------------------------------------------- output


def _row(label: str, *values: str) -> str:
    return f"  {label:<40}" + "".join(f"{v:>16}" for v in values)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


@dataclass
class Outcome:
    broken: bool = False
    lost: int = 0
    lines: list[str] = field(default_factory=list)


async def run_unthrottled(
    n: int,
    k: int,
    profile: Path | None,
    herald_env: dict[str, str],
    outcome: Outcome,
    workdir: Path,
) -> None:
    async with aiohttp.ClientSession(trust_env=False) as http:
        sink, sink_url = await start_sink(["bench/sink.py", "--port", "0"], workdir, "sink")
        herald: Child | None = None
        try:
            t0 = time.monotonic()
            references = await seed(workdir / "herald.db", "emulator", n, sink_url)
            seed_seconds = time.monotonic() - t0
            herald, herald_url = await start_herald(workdir, workdir, http, herald_env)
            meter = CpuMeter(herald.pid, sink.pid)
            async with profiled(herald.pid, profile, workdir):
                result, notification_id = await fanout(http, herald, herald_url, sink_url, n, meter)
            await collect_arrivals(http, sink_url, result)
            await herald.stop()
            herald = None
            expected = [r.conversation_id for r in references]
            lost, duplicates = lost_and_duplicates(expected, result.conversations)

            value = Event.model_validate(EVENT).document()
            value["id"] = notification_id
            value.pop("recipients", None)
            # The SDK's first send goes to the conversation whose message reached the sink
            # first from Herald, so the two activities can be compared field by field.
            first = (result.first_body or {}).get("conversation", {}).get("id")
            sample = [r for r in references if r.conversation_id == first][:1]
            sample += [r for r in references[: min(k, n)] if r.conversation_id != first]
            sample = sample[: min(k, n)]
            sdk = await sdk_loop(http, sink, sink_url, sample, value)
        finally:
            if herald is not None:
                await herald.stop()
            await sink.stop()

    counters = result.status.get("counters", {})
    same_wire = _same_wire(result.first_body, sdk.first_body)
    ratio = result.rate / sdk.rate if sdk.rate else float("inf")
    herald_ms = 1000 * meter.herald / n
    loop_ms = 1000 * meter.herald_loop / n
    sdk_ms = 1000 * sdk.cpu / sdk.k
    rate_ok = result.rate >= RATE_TARGET
    ratio_ok = ratio >= RATIO_TARGET
    complete = result.status.get("status") == "completed" and counters.get("delivered") == n
    outcome.lost += lost + sdk.lost
    outcome.broken |= not complete
    lines = outcome.lines
    lines += [
        "",
        f"UNTHROTTLED — Emulator channel, sink bench/sink.py; N={n:,} (seeded in "
        f"{seed_seconds:.1f} s), SDK sample K={len(sample):,}",
        _row("", "Herald", "SDK loop"),
        _row(
            "messages sent / received",
            f"{n:,} / {result.received:,}",
            f"{sdk.k:,} / {sdk.received:,}",
        ),
        _row(
            "time to last delivery", f"{result.last - result.t_post:.2f} s", f"{sdk.seconds:.2f} s"
        ),
        _row("deliveries/s", f"{result.rate:,.0f}", f"{sdk.rate:,.1f}"),
        _row("p50 POST→delivery latency", _ms(result.latency(0.50)), "—"),
        _row("p99 POST→delivery latency", _ms(result.latency(0.99)), "—"),
        _row("first delivery after POST", _ms(min(result.arrivals) - result.t_post), "—"),
        _row(
            "peak RSS of Herald (VmHWM)",
            f"{result.peak_rss:,.1f} MiB" if result.peak_rss else "?",
            "—",
        ),
        _row("lost / duplicates", f"{lost} / {duplicates}", f"{sdk.lost} / {sdk.duplicates}"),
        _row(
            "Herald status / delivered / failed",
            f"{result.status.get('status')} / {counters.get('delivered')} / "
            f"{counters.get('failed')}",
            "",
        ),
        _row("same activity JSON as the SDK sends", "yes" if same_wire else "NO", ""),
        _row("CPU per delivery, whole process", f"{herald_ms:.2f} ms", f"{sdk_ms:.2f} ms"),
        _row("CPU per delivery, event-loop thread", f"{loop_ms:.2f} ms", ""),
        _row(
            "sink CPU per message (share of a core)",
            f"{1000 * meter.sink / n:.2f} ms ({meter.sink / meter.wall:.0%})",
            "",
        ),
        _row(
            "other processes' CPU (cores)",
            f"{meter.others / meter.wall:.2f}",
            f"{max(0.0, sdk.others) / sdk.seconds:.2f}" if sdk.seconds else "?",
        ),
        _row("Herald / SDK, deliveries/s", f"{ratio:,.1f}×", ""),
        _row("SDK / Herald, CPU per delivery", f"{sdk_ms / herald_ms:,.1f}×", ""),
        f"  target ≥ {RATE_TARGET:,.0f} deliveries/s: {_verdict(rate_ok)}   "
        f"target ≥ {RATIO_TARGET:.0f}× SDK loop: {_verdict(ratio_ok)}   "
        f"no message lost: {_verdict(lost + sdk.lost == 0)}",
    ]
    busy_elsewhere = max(meter.others / meter.wall, sdk.others / sdk.seconds if sdk.seconds else 0)
    if busy_elsewhere > 0.15:
        lines.append(
            f"  WARNING: other processes kept {busy_elsewhere:.2f} cores busy during the run;"
            " wall-clock rates are depressed (CPU per delivery is not)."
        )
    if profile is not None:
        lines.append(f"  profiled with py-spy → {profile} (the sampler slows Herald down):")
        lines += render_profile(load_profile(profile), top=25)


def _same_wire(herald: dict[str, Any] | None, sdk: dict[str, Any] | None) -> bool:
    """Herald's and the SDK's first activity are equal but for the per-send replyToId."""
    if not herald or not sdk:
        return False
    fresh = {"replyToId", "id"}
    return {k: v for k, v in herald.items() if k not in fresh} == {
        k: v for k, v in sdk.items() if k not in fresh
    }


async def run_teams(n: int, herald_env: dict[str, str], outcome: Outcome, workdir: Path) -> None:
    async with aiohttp.ClientSession(trust_env=False) as http:
        sink, sink_url = await start_sink(
            ["-m", "tests.peers.connector", "--port", "0", "--quiet", "--teams-limits"],
            workdir,
            "connector",
        )
        herald: Child | None = None
        try:
            references = await seed(workdir / "herald.db", "msteams", n, sink_url)
            herald, herald_url = await start_herald(workdir, workdir, http, herald_env)
            meter = CpuMeter(herald.pid, sink.pid)
            result, _ = await fanout(http, herald, herald_url, sink_url, n, meter)
            # Messages still in flight when the sink counted N would show up as duplicates.
            await asyncio.sleep(0.5)
            stats = await _json(http, "GET", sink_url + "/_stats")
            await herald.stop()
            herald = None
        finally:
            if herald is not None:
                await herald.stop()
            await sink.stop()

    per_conversation: dict[str, int] = stats["perConversation"]
    expected = [r.conversation_id for r in references]
    lost = sum(1 for c in expected if c not in per_conversation)
    duplicates = sum(v - 1 for v in per_conversation.values() if v > 1)
    accepted = int(stats["accepted"])
    first, last = stats["firstAcceptAt"], stats["lastAcceptAt"]
    span = (last - first) if first is not None else 0.0
    allowed = TEAMS_TENANT_RATE + TEAMS_TENANT_RATE * span
    share = accepted / allowed if accepted else 0.0
    allowed_from_post = TEAMS_TENANT_RATE + TEAMS_TENANT_RATE * (
        (last - result.t_post) if last is not None else 0.0
    )
    share_from_post = accepted / allowed_from_post if accepted else 0.0
    counters = result.status.get("counters", {})
    complete = result.status.get("status") == "completed" and counters.get("delivered") == n
    outcome.lost += lost
    outcome.broken |= not complete
    outcome.lines += [
        "",
        f"TEAMS LIMITS — msteams, one tenant, sink tests.peers.connector --teams-limits "
        f"(50/s per tenant, 7/s per conversation); N={n:,}",
        _row("messages accepted / expected", f"{accepted:,} / {n:,}"),
        _row("delivery span (first→last accept)", f"{span:.2f} s"),
        _row("allowed = 50 + 50/s × span", f"{allowed:,.1f}"),
        _row(
            "achieved rate (accepted − 50) / span",
            f"{(accepted - TEAMS_TENANT_RATE) / span:.2f}/s" if span > 0 else "—",
        ),
        _row("share of allowed rate", f"{share * 100:.2f} %"),
        _row("… measured from the POST", f"{share_from_post * 100:.2f} %"),
        _row("first accept after POST", _ms(first - result.t_post) if first else "—"),
        _row("429s returned by the sink", f"{stats['throttled']:,}"),
        _row("lost / duplicates", f"{lost} / {duplicates}"),
        _row(
            "status / delivered / retrying / failed",
            f"{result.status.get('status')} / {counters.get('delivered')} / "
            f"{counters.get('retrying')} / {counters.get('failed')}",
        ),
        _row(
            "peak RSS of Herald (VmHWM)", f"{result.peak_rss:,.1f} MiB" if result.peak_rss else "?"
        ),
        _row("Herald CPU (share of one core)", f"{meter.herald / meter.wall:.0%}"),
        _row("other processes' CPU (cores)", f"{meter.others / meter.wall:.2f}"),
        f"  target ≥ {SHARE_TARGET:.0%} of the allowed rate: {_verdict(share >= SHARE_TARGET)}"
        f"   no message lost: {_verdict(lost == 0)}",
    ]


# --------------------------------------------------------------------------- main


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Herald broadcast benchmark (see the module docstring for the method)."
    )
    parser.add_argument(
        "--users",
        type=int,
        default=None,
        help="audience size N (default 10,000 unthrottled, 1,000 with Teams limits)",
    )
    parser.add_argument("--teams-users", type=int, default=None, help="N for --mode teams only")
    parser.add_argument("--mode", choices=["unthrottled", "teams", "both"], default="both")
    parser.add_argument("--sdk-sample", type=int, default=1_000, help="K users for the SDK loop")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy raw output of the unthrottled run"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for Herald (e.g. HERALD_WORKERS=128); repeatable",
    )
    args = parser.parse_args(argv)
    for value in (args.users, args.teams_users, args.sdk_sample):
        if value is not None and value < 1:
            parser.error("sizes must be at least 1")
    return args


async def _main(args: argparse.Namespace) -> int:
    herald_env = dict(item.split("=", 1) for item in args.env)
    outcome = Outcome()
    outcome.lines.append(
        f"Herald broadcast benchmark — {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {platform.machine()}; started {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"
    )
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    try:
        if args.mode in ("unthrottled", "both"):
            n = args.users or 10_000
            await run_unthrottled(
                n,
                args.sdk_sample,
                args.profile,
                herald_env,
                outcome,
                Path(tempfile.mkdtemp(prefix="unthrottled-", dir=workdir)),
            )
        if args.mode in ("teams", "both"):
            n = args.teams_users or args.users or 1_000
            await run_teams(
                n, herald_env, outcome, Path(tempfile.mkdtemp(prefix="teams-", dir=workdir))
            )
    except BenchError as exc:
        outcome.broken = True
        outcome.lines.append(f"\nBROKEN: {exc}")
    if outcome.broken or outcome.lost:
        outcome.lines.append(f"(databases and logs kept in {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(outcome.lines))
    if outcome.lost:
        print(f"\nFAILURE: {outcome.lost} message(s) lost")
    if outcome.broken:
        print("\nFAILURE: a step did not complete")
    return 1 if outcome.broken or outcome.lost else 0


def main(argv: Sequence[str] | None = None) -> int:
    for name in [k for k in os.environ if "proxy" in k.lower()]:
        del os.environ[name]  # the SDK's HTTP stack honours proxies; keep it on loopback
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    return asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
