"""The one place that decides when two articles are the same story."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Parameters that only say how a reader arrived, never which article it is.
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|ref|ref_src)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """Lowercase scheme and host, drop fragments, default ports and tracking parameters."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port and parts.port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = urlencode([(k, v) for k, v in query if not _TRACKING.match(k.lower())])
    return urlunsplit((scheme, host, parts.path or "/", kept, ""))


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"\w+", text))


def fingerprint(title: str, paragraphs: tuple[str, ...]) -> str:
    """A hash of the normalized title and opening, so one story from two sources matches."""
    opening = " ".join(paragraphs[:2])
    words = _normalize(opening).split()[:60]
    basis = _normalize(title) + "\n" + " ".join(words)
    return hashlib.sha256(basis.encode()).hexdigest()
