"""The parts app.py wires with: the router's wake-up of the worker, burst sizes below the
published limits, API key hashes, and the stores a Settings selects (storage/backends.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.auth import api_key_hashes, hash_key
from config import Settings
from delivery.ledger_sqlite import SqliteDeliveryLedger
from delivery.outbox_sqlite import SqliteDeliveryQueue
from delivery.ratelimit import burst_below
from delivery.wakeup import WakeUp
from storage.backends import stores_for


def test_wake_up_rings_the_worker_once_connected() -> None:
    rung: list[str] = []
    wake = WakeUp()
    with pytest.raises(RuntimeError):
        wake()  # before the worker exists: a wiring mistake, said so
    wake.connect(lambda: rung.append("worker"))
    wake()
    wake()
    assert rung == ["worker", "worker"]
    with pytest.raises(RuntimeError):
        wake.connect(lambda: None)


@pytest.mark.parametrize(
    ("rate", "burst"), [(50.0, 45.0), (7.0, 6.0), (2.0, 1.0), (1.0, 1.0), (0.5, 1.0)]
)
def test_bursts_stay_below_the_published_limit(rate: float, burst: float) -> None:
    assert burst_below(rate) == pytest.approx(burst)


def test_configured_api_keys_are_hashed_and_none_generated(tmp_path: Path) -> None:
    hashes, generated = api_key_hashes(["k1", "k2"], tmp_path)
    assert hashes == [hash_key("k1"), hash_key("k2")]
    assert generated is None
    assert not (tmp_path / "api-keys.sha256").exists()


def test_without_keys_one_is_generated_and_shown_only_the_first_time(tmp_path: Path) -> None:
    hashes, generated = api_key_hashes([], tmp_path)
    assert generated is not None and hashes == [hash_key(generated)]
    again, shown = api_key_hashes([], tmp_path)
    assert again == hashes and shown is None


async def test_sqlite_settings_select_the_embedded_stores(tmp_path: Path) -> None:
    settings = Settings.from_env({"HERALD_DATA_DIR": str(tmp_path)}, env_file=None)
    stores = stores_for(settings)
    assert not stores.shared and stores.budgets is None and stores.sqlite is not None
    assert isinstance(stores.queue, SqliteDeliveryQueue)
    assert isinstance(stores.ledger, SqliteDeliveryLedger)
    await stores.open()
    try:
        assert await stores.check() == {"store": True}
        assert str(settings.database_path) in stores.description
    finally:
        await stores.close()
