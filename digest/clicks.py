"""Click tracking: signed links to each story, and what following one does.

With `tracking.clicks` on, the email's story links go to `<web.base_url>/c/<token>`. The
token names the digest, the reader and the story, signed with the app's secret key the
way unsubscribe tokens are (itsdangerous, its own salt); it never holds the URL. Following
it (digest/web/clicks.py) looks up the URL stored for that story in that digest, so no
token can send a reader anywhere else, and counts the reader's first click on the story.

Rendering leaves a marker per story (`@@digest-click-<article id>@@`); the message
template swaps each for the reader's link, as it does the unsubscribe link.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache

from itsdangerous import BadSignature, Signer

CLICK_PREFIX = "@@digest-click-"
CLICK_MARKER = re.compile(re.escape(CLICK_PREFIX) + r"(\d+)@@")
# Room a link takes beyond its marker, for the size budget: "/c/", a digest, reader and
# story id of up to nine digits each, and a 27-character signature.
LINK_EXTRA = len("/c/") + 3 * 10 + 27 - len(CLICK_PREFIX + "@@")
_SALT = "digest.click"
_BLOCK = 64  # SHA-1's block size, which HMAC pads its key to


def click_marker(article_id: int) -> str:
    """What the rendered email holds where a reader's link to this story goes."""
    return f"{CLICK_PREFIX}{article_id}@@"


@lru_cache(maxsize=8)
def _signer(key: str) -> Signer:
    return Signer(key, salt=_SALT)


class ClickLinks:
    """Each reader's signed links to the stories of one digest.

    A message has a link per story per reader, so signing is the per-reader cost that
    matters. HMAC (RFC 2104) is hash(outer pad, hash(inner pad, message)); the inner hash
    after the digest and reader ids is computed once per reader and copied for each
    story, with hashlib's C copies (hmac.HMAC.copy costs five times more). The tokens are
    exactly what `Signer.sign` makes, and `Signer.unsign` reads them.
    """

    def __init__(self, key: str, digest_id: int, base_url: str) -> None:
        self.digest_id = digest_id
        self.prefix = base_url.rstrip("/") + "/c/"
        secret = _signer(key).derive_key()
        if len(secret) > _BLOCK:
            secret = hashlib.sha1(secret).digest()  # noqa: S324 (HMAC-SHA1, as itsdangerous signs)
        secret = secret.ljust(_BLOCK, b"\0")
        # HMAC-SHA1 is itsdangerous' default; HMAC does not rely on SHA-1's collision resistance.
        self._inner = hashlib.sha1(bytes(b ^ 0x36 for b in secret))  # noqa: S324
        self._outer = hashlib.sha1(bytes(b ^ 0x5C for b in secret))  # noqa: S324

    def links(self, subscriber_id: int, article_ids: tuple[int, ...]) -> dict[int, str]:
        """The reader's link to each of these stories."""
        head = f"{self.digest_id}.{subscriber_id}."
        reader = self._inner.copy()
        reader.update(head.encode("ascii"))
        outer, encode, start = self._outer.copy, base64.urlsafe_b64encode, self.prefix + head
        found = {}
        for article_id in article_ids:
            story = str(article_id)
            inner = reader.copy()
            inner.update(story.encode("ascii"))
            mac = outer()
            mac.update(inner.digest())
            # A SHA-1 signature is 20 bytes: 28 base64 characters, the last one padding.
            found[article_id] = f"{start}{story}.{encode(mac.digest())[:-1].decode('ascii')}"
        return found


def click_token(key: str, digest_id: int, subscriber_id: int, article_id: int) -> str:
    """One signed token (the path after /c/), as ClickLinks writes it."""
    return _signer(key).sign(f"{digest_id}.{subscriber_id}.{article_id}").decode("ascii")


def read_click_token(key: str, token: str) -> tuple[int, int, int] | None:
    """(digest id, subscriber id, article id), or None when forged, altered or garbled."""
    try:
        value = _signer(key).unsign(token).decode("ascii")
    except (BadSignature, UnicodeError):
        return None
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    digest_id, subscriber_id, article_id = (int(p) for p in parts)
    return digest_id, subscriber_id, article_id
