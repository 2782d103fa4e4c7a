"""A validation failure as one problem (code, message, field): the shape every caller shows,
the HTTP API's 4xx body and the bot's and dialogs' replies alike."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from notifications.event import PATTERN_MESSAGES

__all__ = ["ValidationProblem", "first_problem"]


class ValidationProblem(BaseModel):
    # Every error names its field, null when the problem is not about one field.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    code: str
    message: str
    field: str | None = None


def first_problem(exc: ValidationError) -> ValidationProblem:
    """The first validation error, in the API's error shape."""
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    kind = err["type"]
    code = {
        "missing": "missing_field",
        "extra_forbidden": "unknown_field",
        "card_too_large": "card_too_large",
    }.get(kind, "invalid_field")
    message = str(err["msg"])
    if kind == "string_pattern_mismatch":
        message = PATTERN_MESSAGES.get(str(err.get("ctx", {}).get("pattern")), message)
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return ValidationProblem(code=code, message=message, field=field)
