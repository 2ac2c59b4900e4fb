"""Reading an unsubscribe request sent to the mailto: address in List-Unsubscribe.

Pure: bytes in, the requesting address (or None) out. Every digest offers
`mailto:<sender>?subject=unsubscribe` beside the one-click URL (RFC 2369); a mail program's
"unsubscribe" button sends exactly that message. The From address is all it names, and a
From can be forged, so a message whose receiving server recorded a failed DMARC check for
it is not taken as a request (RFC 8601 Authentication-Results).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

_SUBJECT = re.compile(r"^\s*(?:re:\s*)?unsubscribe\b", re.IGNORECASE)
_DMARC_FAIL = re.compile(r"\bdmarc\s*=\s*fail\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    address: str  # the From address, as written
    trusted: bool  # False: the receiving server saw DMARC fail for that From


def read_unsubscribe_request(raw: bytes) -> UnsubscribeRequest | None:
    """The request in these bytes, or None when they are not one. Never raises."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        subject = str(headers.get("Subject", ""))
        if not _SUBJECT.match(subject):
            return None
        _name, address = parseaddr(str(headers.get("From", "")))
        if "@" not in address:
            return None
        results = headers.get_all("Authentication-Results") or []
        trusted = not any(_DMARC_FAIL.search(str(value)) for value in results)
        return UnsubscribeRequest(address=address, trusted=trusted)
    except Exception:  # a header the parser cannot read: not a request we can act on
        return None
