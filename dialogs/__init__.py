"""Dialogs and Adaptive Card builders."""

__all__: list[str] = []
