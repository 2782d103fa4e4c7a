"""The bot (ActivityHandler) and its /api/messages endpoint."""

__all__: list[str] = []
