"""Proactive messaging: sending to stored conversations without the SDK's per-call cost."""
