"""HTTP endpoints other than /api/messages, and their request/response schemas."""

__all__: list[str] = []
