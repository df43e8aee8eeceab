"""Parse calendar dates written in ISO 8601 forms."""

import datetime
import re

_CALENDAR = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_ORDINAL = re.compile(r"^(\d{4})-(\d{3})$")


def parse_date(text):
    """Return the datetime.date written in `text`.

    Accepted forms: calendar dates (2026-11-24), ordinal dates (2026-328)
    and ISO week dates (2026-W48-2).
    """
    text = text.strip()
    match = _CALENDAR.match(text)
    if match:
        year, month, day = (int(part) for part in match.groups())
        return datetime.date(year, month, day)
    match = _ORDINAL.match(text)
    if match:
        year, day_of_year = (int(part) for part in match.groups())
        return datetime.date(year, 1, 1) + datetime.timedelta(days=day_of_year - 1)
    raise ValueError(f"not an ISO 8601 date: {text!r}")
