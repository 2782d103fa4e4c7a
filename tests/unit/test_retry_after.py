"""Retry-After as every peer may send it: the same reading for the connector, Graph, FCM and
Web Push (they once had four parsers with four sets of rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from retry_after import retry_after_seconds

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("0.25", 0.25),  # fractions: stand-ins send them to keep tests fast
        ("-3", 0.0),  # in the past means now
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("١٢", None),  # digits, but not ASCII ones
        ("1e3", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:10 -0000", None),  # a date in no known zone
    ],
)
def test_delay_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


def test_an_http_date_counts_from_the_clock_by_default() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    assert retry_after_seconds(format_datetime(when, usegmt=True)) == pytest.approx(30, abs=2)
