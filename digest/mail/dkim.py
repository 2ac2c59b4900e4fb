"""Optional DKIM signing (dkimpy), used only when a key is configured.

Every subscriber's copy differs (To, Message-ID, List-Unsubscribe, the body tokens), so
each one is signed on its own. dkimpy does RSA in Python: about 10 ms per message for a
2048-bit key, which caps one core at roughly 100 signed messages a second. For large lists,
sign at the mail server (OpenDKIM, or the provider) instead and leave the key unset here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from digest.errors import ConfigError

# Gmail and Yahoo require the one-click unsubscribe headers to be covered by DKIM.
# Headers listed twice are "oversigned": the extra entry signs their absence, so nobody on
# the way can add a second From, Subject or List-Unsubscribe without breaking the signature.
SIGNED_HEADERS = (
    "from",
    "reply-to",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "from",
    "subject",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


@dataclass(frozen=True, slots=True)
class DkimSigner:
    """Signs finished messages with one RSA key for one selector and domain."""

    selector: str
    domain: str
    private_key: bytes

    def sign(self, message: bytes) -> bytes:
        """The DKIM-Signature header line (CRLF-terminated) to put before `message`."""
        return bytes(
            dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[name.encode("ascii") for name in SIGNED_HEADERS],
            )
        )


def load_signer(key_file: Path, selector: str, domain: str) -> DkimSigner:
    """Read and check a PEM RSA key; a missing or unreadable key is one clear error."""
    try:
        # dkimpy looks for "\n" line endings around the base64 body.
        key = key_file.read_bytes().replace(b"\r\n", b"\n")
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the DKIM key {key_file} ({exc.strerror}); fix dkim.key_file."
        ) from None
    try:
        parse_pem_private_key(key)
    except (UnparsableKeyError, ValueError):
        raise ConfigError(
            f"The DKIM key {key_file} is not a PEM RSA private key; create one with "
            "`openssl genrsa -out dkim.pem 2048`."
        ) from None
    if not selector.isascii() or not domain.isascii() or not selector or not domain:
        raise ConfigError("dkim.selector and dkim.domain must be non-empty ASCII names.")
    return DkimSigner(selector=selector, domain=domain, private_key=key)
