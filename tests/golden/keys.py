"""A fresh RSA key for DKIM tests and the benchmark, made in pure Python.

No key is checked in, and no openssl binary or cryptography package is needed.
"""

from __future__ import annotations

import base64
import math
import secrets

# The product of the odd primes below 5000: one gcd rules out most candidates cheaply.
_PRIMORIAL = math.prod(
    p for p in range(3, 5000, 2) if all(p % d for d in range(3, math.isqrt(p) + 1, 2))
)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _is_probable_prime(n: int, rounds: int = 24) -> bool:
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(rounds):  # Miller-Rabin
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if math.gcd(candidate, _PRIMORIAL) == 1 and _is_probable_prime(candidate):
            return candidate


def rsa_key(bits: int = 2048) -> tuple[bytes, bytes]:
    """(PKCS#1 PEM private key, the DKIM TXT record that publishes its public half)."""
    e = 65537
    while True:
        p, q = _prime(bits // 2), _prime(bits // 2)
        if p != q and math.gcd(e, (p - 1) * (q - 1)) == 1:
            break
    n, d = p * q, pow(e, -1, (p - 1) * (q - 1))
    fields = [0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p)]
    private = _der(0x30, b"".join(_der_int(v) for v in fields))
    pem = (
        b"-----BEGIN RSA PRIVATE KEY-----\n"
        + base64.encodebytes(private)
        + b"-----END RSA PRIVATE KEY-----\n"
    )
    public = _der(0x30, _der_int(n) + _der_int(e))
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
