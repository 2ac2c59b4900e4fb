"""Text from strangers, made safe to show: nothing in it may hide or reorder what it says."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# Bidirectional overrides, embeddings and isolates, and zero-width spaces: in a title, a
# name or a subject they can only make the text read otherwise than it is ("gnp.exe"
# shown for "exe.png") or hide words between visible ones. Joiners (ZWJ, ZWNJ) and the
# directional marks stay: scripts and emoji need them.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u180e\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """The text without bidirectional overrides, isolates and zero-width spaces."""
    return _INVISIBLE.sub("", text)


def without_password(url: str) -> str:
    """The URL as it may be shown or stored: a password in it becomes `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
