"""Store protocols and their backends (embedded SQLite by default)."""

__all__: list[str] = []
