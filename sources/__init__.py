"""Event sources that are not plain POSTs: Microsoft Graph change notifications."""

__all__: list[str] = []
