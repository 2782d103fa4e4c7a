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


class DeliveryMetrics:
    """Counters and histograms of one process since it started."""

    def __init__(self) -> None:
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._retries: Counter[str] = Counter()
        self._latency: dict[str, _Histogram] = {}

    def observe(self, channel: str, outcome: str, latency: float | None = None) -> None:
        """Record one result; `latency` only for deliveries confirmed by the channel."""
        channel = channel or "none"
        self._outcomes[(channel, outcome)] += 1
        if outcome == "retry":
            self._retries[channel] += 1
        if latency is not None:
            self._latency.setdefault(channel, _Histogram()).observe(max(0.0, latency))

    def render(self, *, in_flight: int, depth: Mapping[tuple[str, str], int]) -> str:
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
            name = _label(channel)
            cumulative = 0
            for bound, count in zip(LATENCY_BUCKETS, histogram.counts, strict=False):
                cumulative += count
                lines.append(
                    f'herald_delivery_latency_seconds_bucket{{channel="{name}",le="{bound:g}"}}'
                    f" {cumulative}"
                )
            lines.append(
                f'herald_delivery_latency_seconds_bucket{{channel="{name}",le="+Inf"}}'
                f" {histogram.observations}"
            )
            lines.append(
                f'herald_delivery_latency_seconds_sum{{channel="{name}"}} {histogram.total:.6f}'
            )
            lines.append(
                f'herald_delivery_latency_seconds_count{{channel="{name}"}} '
                f"{histogram.observations}"
            )
        lines += [
            "# HELP herald_queue_depth Deliveries waiting, by channel and state.",
            "# TYPE herald_queue_depth gauge",
        ]
        for (channel, state), count in sorted(depth.items()):
            lines.append(
                f'herald_queue_depth{{channel="{_label(channel or "none")}",'
                f'state="{_label(state)}"}} {count}'
            )
        lines += [
            "# HELP herald_deliveries_in_flight Sends under way in this process.",
            "# TYPE herald_deliveries_in_flight gauge",
            f"herald_deliveries_in_flight {in_flight}",
        ]
        return "\n".join(lines) + "\n"
