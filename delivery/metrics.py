"""Delivery metrics in Prometheus' text format: outcomes, retries, latency, queue depth.

Counted in the worker as results are recorded (no store round trip per metric), rendered on
`GET /metrics`. Latency is from the moment a notification (or its latest version) was accepted
to the moment a recipient's delivery was confirmed, per channel: the number operators watch
during a large broadcast.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "DeliveryMetrics"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
)


@dataclass(slots=True)
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    observations: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value
        self.observations += 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _histogram(metric: str, label: str, value: str, histogram: _Histogram) -> list[str]:
    name = _label(value)
    lines: list[str] = []
    cumulative = 0
    for bound, count in zip(LATENCY_BUCKETS, histogram.counts, strict=False):
        cumulative += count
        lines.append(f'{metric}_bucket{{{label}="{name}",le="{bound:g}"}} {cumulative}')
    lines.append(f'{metric}_bucket{{{label}="{name}",le="+Inf"}} {histogram.observations}')
    lines.append(f'{metric}_sum{{{label}="{name}"}} {histogram.total:.6f}')
    lines.append(f'{metric}_count{{{label}="{name}"}} {histogram.observations}')
    return lines


class DeliveryMetrics:
    """Counters and histograms of one process since it started."""

    def __init__(self, max_lanes: int = 1000) -> None:
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._retries: Counter[str] = Counter()
        self._latency: dict[str, _Histogram] = {}
        self._waits: dict[str, _Histogram] = {}
        self._max_lanes = max_lanes

    def observe_wait(self, lane: str, seconds: float) -> None:
        """How long a leased job waited in the scheduler for its lane's budget and a slot.
        Lanes beyond `max_lanes` are counted under "other" (a bounded number of series)."""
        name = lane or "unpaced"
        if name not in self._waits and len(self._waits) >= self._max_lanes:
            name = "other"
        self._waits.setdefault(name, _Histogram()).observe(max(0.0, seconds))

    def observe(self, channel: str, outcome: str, latency: float | None = None) -> None:
        """Record one result; `latency` only for deliveries confirmed by the channel."""
        channel = channel or "none"
        self._outcomes[(channel, outcome)] += 1
        if outcome == "retry":
            self._retries[channel] += 1
        if latency is not None:
            self._latency.setdefault(channel, _Histogram()).observe(max(0.0, latency))

    def render(
        self,
        *,
        in_flight: int,
        depth: Mapping[tuple[str, str, str], int],
        lanes: Mapping[str, tuple[str, int]] | None = None,
    ) -> str:
        """The text exposition. `depth` is the store's outstanding deliveries by (channel,
        state, lane); `lanes` the scheduler's lanes here: (state, jobs held in memory)."""
        lines = [
            "# HELP herald_deliveries_total Delivery attempts by channel and outcome.",
            "# TYPE herald_deliveries_total counter",
        ]
        for (channel, outcome), count in sorted(self._outcomes.items()):
            lines.append(
                f'herald_deliveries_total{{channel="{_label(channel)}",'
                f'outcome="{_label(outcome)}"}} {count}'
            )
        lines += [
            "# HELP herald_delivery_retries_total Sends that will be retried, by channel.",
            "# TYPE herald_delivery_retries_total counter",
        ]
        for channel, count in sorted(self._retries.items()):
            lines.append(f'herald_delivery_retries_total{{channel="{_label(channel)}"}} {count}')
        lines += [
            "# HELP herald_delivery_latency_seconds Accepted-to-delivered time, by channel.",
            "# TYPE herald_delivery_latency_seconds histogram",
        ]
        for channel, histogram in sorted(self._latency.items()):
            lines += _histogram("herald_delivery_latency_seconds", "channel", channel, histogram)
        lines += [
            "# HELP herald_lane_wait_seconds Time leased jobs waited for their lane's budget"
            " (a Teams tenant's rate) and a send slot, by lane.",
            "# TYPE herald_lane_wait_seconds histogram",
        ]
        for lane, histogram in sorted(self._waits.items()):
            lines += _histogram("herald_lane_wait_seconds", "lane", lane, histogram)
        by_state: Counter[tuple[str, str]] = Counter()
        by_lane: Counter[str] = Counter()
        for (channel, state, lane), count in depth.items():
            by_state[(channel, state)] += count
            if lane:
                by_lane[lane] += count
        lines += [
            "# HELP herald_queue_depth Deliveries waiting, by channel and state.",
            "# TYPE herald_queue_depth gauge",
        ]
        for (channel, state), count in sorted(by_state.items()):
            lines.append(
                f'herald_queue_depth{{channel="{_label(channel or "none")}",'
                f'state="{_label(state)}"}} {count}'
            )
        lines += [
            "# HELP herald_lane_queue_depth Deliveries waiting in the store, by paced lane"
            " (channel|tenant).",
            "# TYPE herald_lane_queue_depth gauge",
        ]
        for lane, count in sorted(by_lane.items()):
            lines.append(f'herald_lane_queue_depth{{lane="{_label(lane)}"}} {count}')
        lines += [
            "# HELP herald_lane_backlog Jobs this process holds for a paced lane, waiting for"
            " its budget (state: ready, waiting, asking, idle).",
            "# TYPE herald_lane_backlog gauge",
        ]
        for lane, (state, held) in sorted((lanes or {}).items()):
            lines.append(
                f'herald_lane_backlog{{lane="{_label(lane)}",state="{_label(state)}"}} {held}'
            )
        lines += [
            "# HELP herald_deliveries_in_flight Sends under way in this process.",
            "# TYPE herald_deliveries_in_flight gauge",
            f"herald_deliveries_in_flight {in_flight}",
        ]
        return "\n".join(lines) + "\n"
