"""Provider webhooks: bounces, complaints and unsubscribes reported after the fact.

Each request is verified the provider's documented way before its body is read as data:
Postmark by the basic auth in the webhook URL, Mailgun by the HMAC-SHA256 of timestamp
and token with the webhook signing key, SendGrid by the ECDSA signature of timestamp and
raw body with the account's public key. A signed request older than `webhooks.max_age`
is refused as a replay. Refused requests get 401, malformed ones 400, and neither changes
anything; an address not on the list is logged and answered 200 (the provider must not
retry it). A provider that is not configured answers 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from digest.feedback import Feedback, from_mailgun, from_postmark, from_sendgrid, record_feedback
from digest.settings import WebhookSettings
from digest.web.guard import password_ok
from digest.web.state import state

log = logging.getLogger("digest.webhooks")


def _refused(provider: str, why: str, status: int = 401) -> Response:
    log.warning("webhook %s refused: %s", provider, why)
    return JSONResponse({"error": why}, status_code=status)


def _fresh(timestamp: str, max_age: int) -> bool:
    try:
        return abs(time.time() - float(timestamp)) <= max_age
    except ValueError:
        return False


def mailgun_signature_ok(key: str, signature: object, max_age: int) -> bool:
    """Mailgun's check: HMAC-SHA256(key, timestamp + token) in hex, and a recent timestamp."""
    if not isinstance(signature, dict):
        return False
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    given = str(signature.get("signature", ""))
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given) and _fresh(timestamp, max_age)


def sendgrid_signature_ok(
    public_key: str, signature: str, timestamp: str, body: bytes, max_age: int
) -> bool:
    """SendGrid's check: ECDSA (P-256, SHA-256) over timestamp + raw body."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode(public_key))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return _fresh(timestamp, max_age)


async def _apply(request: Request, provider: str, items: list[Feedback]) -> Response:
    report = await run_in_threadpool(record_feedback, state(request).engine, items)
    for address in report.unknown:
        log.info("webhook %s: %s is not on the list", provider, address)
    return JSONResponse(
        {"changed": report.changed, "unchanged": report.unchanged, "unknown": len(report.unknown)}
    )


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None


def _configured(request: Request) -> WebhookSettings:
    return state(request).settings().webhooks


async def postmark(request: Request) -> Response:
    hooks = _configured(request)
    if hooks.postmark_password is None:
        return Response(status_code=404)
    secret = hooks.postmark_password.get_secret_value()
    if not password_ok(request, secret, user=hooks.postmark_username):
        return _refused("postmark", "wrong or missing basic auth")
    payload = await _json(request)
    if not isinstance(payload, dict):
        return _refused("postmark", "the body is not a JSON object", 400)
    return await _apply(request, "postmark", from_postmark(payload))


async def mailgun(request: Request) -> Response:
    hooks = _configured(request)
    if hooks.mailgun_signing_key is None:
        return Response(status_code=404)
    payload = await _json(request)
    if not isinstance(payload, dict):
        return _refused("mailgun", "the body is not a JSON object", 400)
    key = hooks.mailgun_signing_key.get_secret_value()
    if not mailgun_signature_ok(key, payload.get("signature"), hooks.max_age):
        return _refused("mailgun", "bad, missing or expired signature")
    return await _apply(request, "mailgun", from_mailgun(payload))


async def sendgrid(request: Request) -> Response:
    hooks = _configured(request)
    if not hooks.sendgrid_public_key:
        return Response(status_code=404)
    body = await request.body()
    signature = request.headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp", "")
    key = hooks.sendgrid_public_key
    if not sendgrid_signature_ok(key, signature, timestamp, body, hooks.max_age):
        return _refused("sendgrid", "bad, missing or expired signature")
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        events = None
    if not isinstance(events, list):
        return _refused("sendgrid", "the body is not a JSON array of events", 400)
    return await _apply(request, "sendgrid", from_sendgrid(events))
