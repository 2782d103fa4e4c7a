"""What Herald can do, in one message: the answer to `help`, wherever it is typed."""

from __future__ import annotations

from typing import Final

__all__ = ["HELP_TEXT"]

HELP_TEXT: Final = (
    "I'm Herald. I deliver notifications from your company's systems here, "
    "to your phone or to your browser, wherever you prefer.\n\n"
    "- **help**: what I can do\n"
    "- **status**: how I reach you and how many notifications you haven't read\n"
    "- **settings**: your notification settings on one card (channels, muted types, quiet "
    "hours, time zone)\n"
    "- **mute** *type* / **unmute** *type*: e.g. `mute training.due`\n"
    "- **quiet** *from-to* / **quiet off**: e.g. `quiet 22:00-07:00`\n"
    "- **timezone** *name*: e.g. `timezone Europe/Berlin`\n"
    "- **mobile off**, **browser on**, **chat off**: switch a channel\n"
    "- **history**: your last 10 notifications; **mark all read**\n"
    "- **inbox**: a link to a live page of your notifications (new ones appear as they "
    "arrive)\n"
    "- **calendar**: notify me about changes to my calendar (Teams); **calendar off** to stop\n"
    "- **start** / **stop**: turn all notifications on or off\n"
    "- **cancel**: stop whatever we are in the middle of"
)
