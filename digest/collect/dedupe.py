"""The one place that decides when two articles are the same story.

Three keys, checked by `store.add_articles`: the canonical URL (any source), the feed
GUID (within one source, since GUIDs are only unique per feed) and a fingerprint of the
normalized title and opening words (any source), which catches one story syndicated to
two sites under different URLs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from itertools import islice
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Parameters that only say how a reader arrived, never which article it is.
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|gclsrc|dclid|msclkid|yclid|twclid|mc_cid|mc_eid|igshid|_ga|_gl"
    r"|_hsenc|_hsmi|mkt_tok|ref|ref_src|ref_url|cmpid|ncid|sr_share|at_medium|at_campaign"
    r"|oly_anon_id|oly_enc_id|vero_id|wt_mc|wt\.mc_id)$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# "SEOUL —", "LONDON (Reuters) -": one source prints the dateline, the other may not.
_DATELINE = re.compile(r"^[A-Z][A-Z .,'/-]{1,40}(?:\([^)]{1,40}\))?\s*[—–-]+\s+")
FINGERPRINT_WORDS = 30
_WORD = re.compile(r"\w+")


def canonical_url(url: str) -> str:
    """Lowercase scheme and host, drop fragments, default ports and tracking parameters."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # an unparseable port or host: keep the URL as the feed gave it
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = urlencode([(k, v) for k, v in query if not _TRACKING.match(k.lower())])
    return urlunsplit((scheme, host, parts.path or "/", kept, ""))


def _words(text: str, limit: int | None = None) -> list[str]:
    """Casefolded word tokens, stopping after `limit` (only the opening words count)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return [m.group() for m in islice(_WORD.finditer(text), limit)]


def fingerprint(title: str, paragraphs: Sequence[str]) -> str:
    """A hash of the normalized title and opening words, so one story from two sources matches.

    Only the first few words count: a teaser cut with "…" and the full text, or a copy
    that ends with different site chrome, still share their opening sentence.
    """
    opening = _DATELINE.sub("", " ".join(paragraphs[:2]))
    basis = " ".join(_words(title)) + "\n" + " ".join(_words(opening, FINGERPRINT_WORDS))
    return hashlib.sha256(basis.encode()).hexdigest()
