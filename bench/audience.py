"""Audience benchmark: expansion of a large Entra ID group from the Graph stand-in.

Usage::

    .venv/bin/python bench/audience.py [--members N] [--deliver]

Method
------
Everything runs on this host over loopback (127.0.0.1), proxy variables removed. The Entra ID
and Microsoft Graph stand-ins (tests/peers/graph.py, TLS with a certificate made for the run,
msal's client-credentials flow) run in this process and serve one group of N users (default
50,000) through `GET /groups/{id}/transitiveMembers/microsoft.graph.user`, 999 a page as Graph
does with `$top=999`. Herald runs as `python app.py` (SQLite) in a child process, configured
with the stand-ins as Microsoft Graph.

1. Herald starts; once `/readyz` answers and it has idled 2 s, its resident set (VmRSS of
   `/proc/<pid>/status`) is the idle baseline.
2. One event with `recipients: {"groups": [id]}` is posted; the clock runs from just before
   the POST until the status says the expansion finished (`status` leaves `accepted`). Nobody
   in the group ever talked to the bot, so each person is planned as a chat to create.
   By default HERALD_OPT_IN_REQUIRED is on, so every person is planned as `skipped:
   no-consent` and nothing is sent: the run measures the expansion alone (Graph pages, users
   looked up, the router's plan, rows and cursor written per page). With `--deliver`, a Bot
   Connector stand-in (unthrottled, in this process) is Herald's tenant serviceUrl, and every
   person's chat is created and the card sent while the expansion goes on; the clock then
   also runs to the end of delivery.
3. Peak RSS is Herald's VmHWM at the end; the target: within 30 MiB of the idle baseline
   (the audience is never in memory whole: one page at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import HeraldProcess, free_port  # noqa: E402
from tests.peers.connector import ConnectorStandIn  # noqa: E402
from tests.peers.graph import EntraStandIn, GraphStandIn  # noqa: E402
from tests.peers.tls import self_signed  # noqa: E402

RSS_BUDGET_MIB = 30.0


def rss_mib(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


async def run(members: int, deliver: bool) -> bool:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="herald-audience-") as tmp:
        tls = self_signed(Path(tmp) / "tls")
        async with (
            EntraStandIn(tls) as entra,
            GraphStandIn(tls, entra) as graph,
            ConnectorStandIn(record=False) as connector,
        ):
            graph.member_page_size = 999
            group = str(uuid.uuid4())
            graph.add_group(group, [str(uuid.uuid4()) for _ in range(members)])
            port = free_port()
            env = {
                "GRAPH_TENANT_ID": entra.tenant,
                "GRAPH_CLIENT_ID": entra.client_id,
                "GRAPH_CLIENT_SECRET": entra.client_secret,
                "GRAPH_AUTHORITY_HOST": entra.url,
                "GRAPH_BASE_URL": graph.base,
                "GRAPH_CA_FILE": str(tls.cert_file),
                "HERALD_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "PORT": str(port),
                "HERALD_LOG_LEVEL": "WARNING",
                "HERALD_THROTTLED_CHANNELS": "none",
                "HERALD_OPT_IN_REQUIRED": "false" if deliver else "true",
            }
            if deliver:
                env["HERALD_TEAMS_SERVICE_URL"] = connector.url
            herald = HeraldProcess(Path(tmp) / "data", env)
            await herald.start()
            try:
                assert herald.process is not None
                pid = herald.process.pid
                await asyncio.sleep(2.0)
                idle = rss_mib(pid, "VmRSS")
                started = time.monotonic()
                code, body = await herald.post_event(
                    {"type": "bench", "title": "Benchmark", "recipients": {"groups": [group]}}
                )
                assert code == 202, body
                notification = str(body["id"])
                expanded_at: float | None = None
                while True:
                    status = await herald.status(notification)
                    if expanded_at is None and status["status"] != "accepted":
                        expanded_at = time.monotonic()
                    if status["status"] == "completed" or (
                        not deliver and expanded_at is not None
                    ):
                        break
                    await asyncio.sleep(0.25)
                finished = time.monotonic()
                peak = rss_mib(pid, "VmHWM")
                status = await herald.status(notification)
            finally:
                await herald.close()
                if herald.http is not None:
                    await herald.http.close()
            assert expanded_at is not None
            expansion = expanded_at - started
            [part] = status["audience"]["parts"]
            print(f"# Audience expansion: one group of {members:,} users from the Graph stand-in")
            print()
            print(f"{platform.python_implementation()} {platform.python_version()}, "
                  f"{os.cpu_count()} CPU(s), {'with delivery' if deliver else 'expansion only'}")
            print()
            print("| measure | value |")
            print("|---|---|")
            print(f"| Graph pages | {len(graph.calls('GET', '/transitiveMembers'))} |")
            print(f"| members listed / added | {part['listed']:,} / {part['added']:,} |")
            print(f"| expansion time | {expansion:.2f} s |")
            print(f"| members/s (expansion) | {members / expansion:,.0f} |")
            if deliver:
                total = finished - started
                created = connector.counters.created
                print(f"| chats created / cards sent | {created:,} / "
                      f"{connector.counters.accepted:,} |")
                print(f"| to the last delivery | {total:.2f} s ({members / total:,.0f}/s) |")
            print(f"| counters | {status['counters']} |")
            print(f"| Herald RSS idle (VmRSS) | {idle:.1f} MiB |")
            print(f"| Herald peak RSS (VmHWM) | {peak:.1f} MiB |")
            growth = peak - idle
            ok = growth <= RSS_BUDGET_MIB
            print(f"| peak - idle | {growth:.1f} MiB (budget {RSS_BUDGET_MIB:.0f} MiB: "
                  f"{'ok' if ok else 'OVER'}) |")
            return ok and part["added"] == members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--deliver", action="store_true",
                        help="also create every chat and send every card (connector stand-in)")
    args = parser.parse_args()
    ok = asyncio.run(run(args.members, args.deliver))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
