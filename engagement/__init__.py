"""Who saw it: read and acknowledged state per (person, notification), from every surface."""

from engagement.service import (
    SURFACES,
    AckOutcome,
    EngagementService,
    acknowledge_text,
)

__all__ = ["SURFACES", "AckOutcome", "EngagementService", "acknowledge_text"]
