"""Real servers for delivery tests: aiosmtpd for SMTP, uvicorn for the provider APIs.

The SMTP server records every message it accepts and can be told to misbehave: refuse
an address, answer 451 a few times, drop the connection in the middle of DATA, or be
slow. The provider server implements the parts of Postmark, SendGrid and Mailgun that
digest uses, checks each request against their documented formats, and records what
each reader would receive after the provider's own substitution.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formataddr, getaddresses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digest.deliver import DeliveryPolicy, DeliveryReport, deliver_digest
from digest.mail.transport import Transport

USER, PASSWORD = "digest", "s3cret-Pa55"

# -- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what a client trusts
    cert: Path  # the server's chain
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificates(folder: Path) -> Certificates:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: Any, issuer: x509.Name, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        usage = dict.fromkeys(
            (
                "content_commitment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    **usage,
                ),
                critical=True,
            )
        else:
            builder = (
                builder.add_extension(
                    x509.SubjectAlternativeName(
                        [
                            x509.DNSName("localhost"),
                            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        ]
                    ),
                    critical=False,
                )
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        key_encipherment=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        **usage,
                    ),
                    critical=True,
                )
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                    False,
                )
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "digest test CA")])
    ca = build("digest test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("localhost", key, ca_name, ca_key, ca=False)
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# -- SMTP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    recipient: str
    data: bytes
    session: int
    sender: str = ""  # MAIL FROM


@dataclass
class SmtpScript:
    """How the server misbehaves; every counter counts down as it is used."""

    refuse_sender: str = ""  # a MAIL FROM reply refusing the sender
    refuse: dict[str, str] = field(default_factory=dict)  # address -> RCPT reply
    busy_rcpt: Counter[str] = field(default_factory=Counter)  # address -> 451 replies left
    busy_data: Counter[str] = field(default_factory=Counter)  # address -> 451 after DATA
    drop_mid_data: int = 0  # connections to drop after the first line of content
    drop_after_accept: int = 0  # messages to accept, then drop before the reply
    delay: float = 0.0  # seconds before answering each message's content
    slow_once: float = 0.0  # one extra delay, for the first message only


class RecordingHandler:
    """An aiosmtpd handler that keeps what it accepted and follows its script."""

    def __init__(self, *, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.script = SmtpScript()
        self.received: list[Received] = []
        self.peers: set[tuple[str, int]] = set()  # one per client connection
        self.lock = threading.Lock()

    @property
    def sessions(self) -> int:
        return len(self.peers)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.recipient for r in self.received)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.peers.add(session.peer)
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.script.refuse_sender:
            return self.script.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.script.refuse:
            return self.script.refuse[address]
        if self.script.busy_rcpt[address] > 0:
            self.script.busy_rcpt[address] -= 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        script = self.script
        delay = script.delay + script.slow_once
        script.slow_once = 0.0
        if delay:
            await asyncio.sleep(delay)
        (address,) = envelope.rcpt_tos
        if script.busy_data[address] > 0:
            script.busy_data[address] -= 1
            return "451 4.3.0 Queue full, try again"
        data = envelope.original_content or b""
        with self.lock:
            self.received.append(Received(address, data, id(session), envelope.mail_from or ""))
        if script.drop_after_accept > 0:
            script.drop_after_accept -= 1
            assert server.transport is not None
            server.transport.abort()
        return "250 2.0.0 Ok: queued"


class ScriptedSMTP(SMTP):
    """aiosmtpd's server, able to drop a connection in the middle of a message's content."""

    async def smtp_DATA(self, arg: str) -> None:
        handler = self.event_handler
        assert self.envelope is not None
        if handler.script.drop_mid_data > 0 and self.envelope.rcpt_tos:
            handler.script.drop_mid_data -= 1
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")
            assert self.transport is not None
            self.transport.abort()
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return ScriptedSMTP(self.handler, **self.SMTP_kwargs)


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int
    security: str

    def settings_env(self) -> dict[str, str]:
        """The DIGEST_* variables that make digest deliver to this plain (no TLS) server."""
        return {
            "DIGEST_DELIVERY__BACKEND": "smtp",
            "DIGEST_DELIVERY__SMTP_HOST": "127.0.0.1",
            "DIGEST_DELIVERY__SMTP_PORT": str(self.port),
            "DIGEST_DELIVERY__SMTP_SECURITY": "none",
        }


@contextmanager
def smtp_server(
    certificates: Certificates | None = None,
    *,
    security: str = "none",
    pipelining: bool = True,
    auth: bool = False,
    idle_timeout: float = 30,
    smtputf8: bool = False,
) -> Iterator[SmtpServer]:
    """A running aiosmtpd on 127.0.0.1: plain, STARTTLS (required) or implicit TLS."""
    handler = RecordingHandler(pipelining=pipelining)
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": free_port()}
    kwargs["enable_SMTPUTF8"] = smtputf8
    kwargs["timeout"] = idle_timeout
    if security != "none":
        assert certificates is not None
        context = certificates.server_context()
        if security == "starttls":
            kwargs |= {"tls_context": context, "require_starttls": True}
        else:
            kwargs |= {"ssl_context": context}
    if auth:
        kwargs |= {"authenticator": _authenticate, "auth_required": True}
    controller = _Controller(handler, **kwargs)
    controller.start()
    try:
        yield SmtpServer(handler, kwargs["port"], security)
    finally:
        controller.stop()


# -- provider APIs ----------------------------------------------------------------------

API_KEY = "test-api-key"


@dataclass(frozen=True)
class Delivered:
    """One reader's copy, as the provider would send it after its substitutions."""

    provider: str
    to: str
    name: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]  # decoded (RFC 2047), as a mail reader shows them
    raw_headers: dict[str, str] = field(default_factory=dict)  # as the request carried them


class ProviderServer:
    """Postmark, SendGrid and Mailgun endpoints that check requests as documented."""

    def __init__(self) -> None:
        self.delivered: list[Delivered] = []
        self.requests: Counter[str] = Counter()
        self.failures: list[tuple[int, dict[str, str]]] = []  # served first, one per request
        self.refuse: set[str] = set()  # addresses the provider refuses
        # Senders with a confirmed Postmark signature or a verified SendGrid identity.
        self.verified: set[str] = {"digest@example.org"}
        self.account_error: tuple[int, str] | None = None  # Postmark: may not send now
        self.send_limit: int | None = None  # Postmark: 405 once this many were taken
        self.delayed: set[str] = set()  # Postmark: accepted, but delivery may be delayed
        self.postmark_max_bytes = 50 * 1000 * 1000  # the batch payload limit
        self.largest = 0  # the largest request body received, in bytes
        self.too_large = 0  # requests answered 413
        self.domains: set[str] = {"mg.example.org"}  # Mailgun's sending domains
        self.mailgun_variables: list[dict[str, str]] = []  # the v: fields of each request
        # Postmark: address -> SuppressionReason (ManualSuppression, SpamComplaint ...)
        self.suppressed: dict[str, str] = {}
        self.lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/email/batch", self.postmark, methods=["POST"]),
                Route("/v3/mail/send", self.sendgrid, methods=["POST"]),
                Route("/v3/{domain}/messages", self.mailgun, methods=["POST"]),
                Route(
                    "/message-streams/{stream}/suppressions/dump",
                    self.postmark_suppressions,
                    methods=["GET"],
                ),
                # Anything else answers 200 with a page, as a web server or an API's root
                # does: what a wrong api_base_url reaches.
                Route("/{path:path}", self.elsewhere, methods=["GET", "POST"]),
            ]
        )

    def fail_next(self, status: int, times: int = 1, **headers: str) -> None:
        self.failures += [(status, {k.replace("_", "-"): v for k, v in headers.items()})] * times

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(d.to for d in self.delivered)

    def _scripted(self, provider: str) -> Response | None:
        with self.lock:
            self.requests[provider] += 1
            if not self.failures:
                return None
            status, headers = self.failures.pop(0)
        return JSONResponse({"message": "scripted failure"}, status_code=status, headers=headers)

    # https://postmarkapp.com/developer/api/suppressions-api (the dump, by address)
    async def postmark_suppressions(self, request: Request) -> Response:
        if request.headers.get("x-postmark-server-token") != API_KEY:
            return JSONResponse({"ErrorCode": 10, "Message": "Bad or missing token"}, 401)
        with self.lock:
            self.requests["postmark suppressions"] += 1
        address = request.query_params.get("EmailAddress", "")
        entries = [
            {
                "EmailAddress": a,
                "SuppressionReason": reason,
                "Origin": "Recipient" if reason != "HardBounce" else "Postmark",
                "CreatedAt": "2026-11-20T10:00:00-05:00",
            }
            for a, reason in self.suppressed.items()
            if not address or a == address
        ]
        return JSONResponse({"Suppressions": entries})

    async def elsewhere(self, request: Request) -> Response:
        with self.lock:
            self.requests["elsewhere"] += 1
        return Response("<html><body>Welcome</body></html>", media_type="text/html")

    def _deliver(self, *copies: Delivered) -> None:
        with self.lock:
            self.delivered.extend(copies)

    # Postmark: https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
    # (up to 500 messages and 50 MB; HTTP 200 with one result per message, each with a
    # MessageID or an ErrorCode) and https://postmarkapp.com/developer/api/overview#error-codes
    # (10 token, 300 invalid request, 400/401 sender signature, 405/412/413 account,
    # 406 inactive recipient, 410 too many batch messages; 422 for the request as a whole).
    async def postmark(self, request: Request) -> Response:
        if request.headers.get("x-postmark-server-token") != API_KEY:
            return JSONResponse({"ErrorCode": 10, "Message": "Bad or missing token"}, 401)
        if request.headers.get("accept") != "application/json" or not request.headers.get(
            "content-type", ""
        ).startswith("application/json"):
            return JSONResponse({"ErrorCode": 402, "Message": "Accept and Content-Type"}, 422)
        if failure := self._scripted("postmark"):
            return failure
        body = await request.body()
        with self.lock:
            self.largest = max(self.largest, len(body))
        if len(body) > self.postmark_max_bytes:
            with self.lock:
                self.too_large += 1
            return Response("Request Entity Too Large", 413)
        messages = json.loads(body)
        if not isinstance(messages, list) or not messages:
            return JSONResponse({"ErrorCode": 402, "Message": "Invalid JSON"}, 422)
        if len(messages) > 500:
            message = "Too many batch messages: at most 500 in one batch."
            return JSONResponse({"ErrorCode": 410, "Message": message}, 422)
        return JSONResponse([self._postmark_message(m) for m in messages])

    def _postmark_message(self, m: dict[str, Any]) -> dict[str, Any]:
        """One message's result, as the batch endpoint reports it."""
        assert set(m) <= {
            "From",
            "To",
            "Subject",
            "TextBody",
            "HtmlBody",
            "Headers",
            "MessageStream",
            "Metadata",
            "ReplyTo",
            "Tag",
        }, m.keys()
        assert m["From"] and m["Subject"] and m["TextBody"] and m["HtmlBody"]
        assert m["MessageStream"] == "broadcast"
        assert all(set(h) == {"Name", "Value"} for h in m["Headers"])
        [(_, sender)] = getaddresses([m["From"]])
        if not _valid(sender):
            return {"ErrorCode": 300, "Message": f"Invalid 'From' address: '{m['From']}'."}
        if "ReplyTo" in m and not _valid(getaddresses([m["ReplyTo"]])[0][1]):
            return {"ErrorCode": 300, "Message": f"Invalid 'ReplyTo' address: '{m['ReplyTo']}'."}
        if sender not in self.verified:
            message = f"The 'From' address ({sender}) has no confirmed Sender Signature."
            return {"ErrorCode": 400, "Message": message}
        if self.account_error:
            code, message = self.account_error
            return {"ErrorCode": code, "Message": message}
        if self.send_limit is not None and len(self.delivered) >= self.send_limit:
            return {"ErrorCode": 405, "Message": "Not allowed to send: sending limit reached."}
        [(name, address)] = getaddresses([m["To"]])
        if not _valid(address):
            return {"ErrorCode": 300, "Message": f"Invalid 'To' address: '{m['To']}'."}
        if address in self.refuse or address in self.suppressed:
            message = f"Found inactive addresses: {address}. They bounced or were suppressed."
            return {"ErrorCode": 406, "Message": message}
        headers = {h["Name"]: _decoded(h["Value"]) for h in m["Headers"]}
        if "ReplyTo" in m:
            headers["Reply-To"] = m["ReplyTo"]
        self._deliver(
            Delivered(
                "postmark",
                address,
                _decoded(name),
                m["Subject"],
                m["TextBody"],
                m["HtmlBody"],
                headers,
                {h["Name"]: h["Value"] for h in m["Headers"]},
            )
        )
        if address in self.delayed:
            # Taken, with a MessageID, but without the usual ErrorCode 0.
            message = "Message accepted, but delivery may be delayed."
            return {"Message": message, "MessageID": str(uuid.uuid4()), "To": m["To"]}
        return {"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4()), "To": m["To"]}

    # SendGrid: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
    # Errors: https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/errors
    # (a list of {message, field}; 403 for a From that is not a verified Sender Identity:
    # https://twilio.com/docs/api/errors/60222).
    async def sendgrid(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"errors": [{"message": "authorization grant is invalid"}]}, 401)
        if failure := self._scripted("sendgrid"):
            return failure
        body = await request.json()
        people = body["personalizations"]
        if not 1 <= len(people) <= 1000:
            message = "The personalizations field must have 1 to 1000 items."
            return _sendgrid_error(400, message, "personalizations")
        assert body["from"]["email"] and body["subject"]
        if not _valid(body["from"]["email"]):
            return _sendgrid_error(
                400, "The from email does not contain a valid address.", "from.email"
            )
        if "reply_to" in body and not _valid(body["reply_to"]["email"]):
            message = "The reply_to email does not contain a valid address."
            return _sendgrid_error(400, message, "reply_to.email")
        if body["from"]["email"] not in self.verified:
            message = "The from address does not match a verified Sender Identity."
            return _sendgrid_error(403, message, "from")
        for name, value in body.get("headers", {}).items():
            if not value.isascii():
                return _sendgrid_error(400, "Header values must be ASCII.", f"headers.{name}")
        kinds = [c["type"] for c in body["content"]]
        assert kinds == ["text/plain", "text/html"], "text/plain must come first"
        reserved = {"to", "from", "subject", "reply-to", "cc", "bcc", "content-type"}
        for i, p in enumerate(people):
            assert len(p["to"]) == 1
            for name, value in p.get("headers", {}).items():
                if not value.isascii():
                    field_name = f"personalizations.{i}.headers.{name}"
                    return _sendgrid_error(400, "Header values must be ASCII.", field_name)
            assert not reserved & {h.lower() for h in p.get("headers", {})}
            if p["to"][0]["email"] in self.refuse:
                field_name = f"personalizations.{i}.to.0.email"
                error = {"message": "Does not contain a valid address.", "field": field_name}
                return JSONResponse({"errors": [error]}, 400)
        assert not reserved & {h.lower() for h in body.get("headers", {})}
        given = body.get("reply_to")
        reply_to = (
            {"Reply-To": formataddr((given.get("name", ""), given["email"]))} if given else {}
        )
        copies = []
        for p in people:
            subs = p.get("substitutions", {})
            assert all(isinstance(v, str) for v in subs.values())

            def sub(text: str, subs: dict[str, str] = subs) -> str:
                for tag, value in subs.items():
                    text = text.replace(tag, value)
                return text

            to = p["to"][0]
            raw = {**body.get("headers", {}), **p.get("headers", {})}
            copies.append(
                Delivered(
                    "sendgrid",
                    to["email"],
                    _unquoted(to.get("name", "")),
                    body["subject"],
                    sub(body["content"][0]["value"]),
                    sub(body["content"][1]["value"]),
                    {k: _decoded(v) for k, v in raw.items()} | reply_to,
                    raw,
                )
            )
        self._deliver(*copies)
        return Response(status_code=202, headers={"X-Message-Id": uuid.uuid4().hex})

    # Mailgun: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages
    # (200 with {"id", "message"}; 400 {"message"} naming the bad parameter; 404 for a
    # domain that is not the account's).
    async def mailgun(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Response("Forbidden", 401)
        if failure := self._scripted("mailgun"):
            return failure
        domain = request.path_params["domain"]
        if domain not in self.domains:
            return JSONResponse({"message": f"Domain not found: {domain}"}, 404)
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        fields = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        form = dict(fields)
        if not _valid(getaddresses([form["from"]])[0][1]):
            message = "'from' parameter is not a valid address. please check documentation"
            return JSONResponse({"message": message}, 400)
        to = [v for k, v in fields if k == "to"]
        if not 1 <= len(to) <= 1000:
            return JSONResponse({"message": "'to' parameter: 1 to 1000 recipients"}, 400)
        variables = json.loads(form["recipient-variables"])
        addresses = getaddresses([str(t) for t in to])
        assert {a for _, a in addresses} == set(variables)
        if any(a in self.refuse for _, a in addresses):
            message = "'to' parameter is not a valid address. please check documentation"
            return JSONResponse({"message": message}, 400)

        def sub(text: str, values: dict[str, str]) -> str:
            return re.sub(r"%recipient\.(\w+)%", lambda m: str(values[m.group(1)]), text)

        headers = {k[2:]: v for k, v in fields if k.startswith("h:")}
        # Each reader's copy carries these in X-Mailgun-Variables, for anyone to read.
        self.mailgun_variables.append({k[2:]: v for k, v in fields if k.startswith("v:")})
        self._deliver(
            *[
                Delivered(
                    "mailgun",
                    address,
                    _decoded(name),
                    str(form["subject"]),
                    sub(str(form["text"]), variables[address]),
                    sub(str(form["html"]), variables[address]),
                    {k: _decoded(sub(v, variables[address])) for k, v in headers.items()},
                    {k: sub(v, variables[address]) for k, v in headers.items()},
                )
                for name, address in addresses
            ]
        )
        return JSONResponse(
            {"id": f"<{uuid.uuid4().hex}@{domain}>", "message": "Queued. Thank you."}
        )


def _sendgrid_error(status: int, message: str, field: str | None) -> Response:
    return JSONResponse({"errors": [{"message": message, "field": field, "help": None}]}, status)


def _valid(address: str) -> bool:
    """An address a provider accepts: one @, and a dot in the domain."""
    return re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address) is not None


def _decoded(name: str) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(name))) if name else ""


def _unquoted(name: str) -> str:
    return name[1:-1].replace('\\"', '"').replace("\\\\", "\\") if name[:1] == '"' else name


@contextmanager
def provider_server() -> Iterator[tuple[ProviderServer, str]]:
    """A running ProviderServer; yields it and its base URL."""
    fake = ProviderServer()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- a ledger to deliver -----------------------------------------------------------------

TEXT = (
    "Hello @@digest-name@@,\n.a line that starts with a dot\n\n"
    "Unsubscribe: @@digest-unsubscribe@@\nPreferences: @@digest-preferences@@\n"
)
HTML = (
    "<html><body><p>Hello @@digest-name@@,</p><p>Caf\u00e9 &amp; news</p>"
    '<a href="@@digest-unsubscribe@@">Unsubscribe</a> '
    '<a href="@@digest-preferences@@">Preferences</a></body></html>'
)


@dataclass
class Ledger:
    engine: Any
    digest_id: int
    key: str
    template: Any

    def counts(self) -> dict[str, int]:
        from digest import store

        with store.transaction(self.engine) as conn:
            return store.delivery_counts(conn, self.digest_id)

    def rows(self) -> dict[str, dict[str, Any]]:
        """Each subscriber's delivery row, by email."""
        import sqlalchemy as sa

        from digest import store

        query = (
            sa.select(
                store.subscribers.c.email, store.subscribers.c.status.label("who"), store.deliveries
            )
            .join(store.deliveries, store.deliveries.c.subscriber_id == store.subscribers.c.id)
            .where(store.deliveries.c.digest_id == self.digest_id)
        )
        with store.transaction(self.engine) as conn:
            return {row.email: dict(row._mapping) for row in conn.execute(query)}


def make_ledger(
    db: Path | str,
    count: int,
    *,
    key: str = "daily/2026-11-28",
    names: bool = True,
    engine: Any = None,
    sender_name: str = "Test Digest",
    sender_address: str = "digest@example.org",
    reply_to: str = "Editors <editors@example.org>",
) -> Ledger:
    """A ledger with `count` subscribers (r0000@example.org ...) and one digest.

    `db` is a SQLite file or a database URL; an empty `reply_to` sends none.
    """
    from datetime import UTC, date, datetime

    from digest import store
    from digest.mail.message import MessageTemplate
    from digest.models import RenderedDigest

    engine = engine or store.connect(db if isinstance(db, str) else f"sqlite:///{db}")
    with store.transaction(engine) as conn:
        for n in range(count):
            email = f"r{n:04d}@example.org"
            if store.find_subscriber(conn, email) is None:
                name = f"Reader {n}" if names and n % 3 else None
                store.insert_subscriber(conn, email, name, (), "active")
        digest_id = store.create_digest(
            conn,
            key=key,
            list_name="daily",
            day=date(2026, 11, 28),
            subject="The digest",
            html=HTML,
            text=TEXT,
            items=[],
        )
    assert digest_id is not None
    template = MessageTemplate(
        RenderedDigest("The digest — Café edition", HTML, TEXT),
        sender_name=sender_name,
        sender_address=sender_address,
        list_id=f"{sender_name} <daily.example.org>",
        unsubscribe_url="https://digest.example.org/unsubscribe/{token}",
        unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
        preferences_url="https://digest.example.org/preferences/{token}",
        digest_key=key,
        sent_at=datetime(2026, 11, 28, 6, 0, tzinfo=UTC),
        reply_to=reply_to,
    )
    return Ledger(engine, digest_id, key, template)


def token_for(subscriber_id: int) -> str:
    return f"tok-{subscriber_id}"


def deliver_through(ledger: Ledger, transport: Transport, policy: DeliveryPolicy) -> DeliveryReport:
    """Send the ledger's digest through a transport, then close it."""
    try:
        return deliver_digest(
            ledger.engine,
            digest_id=ledger.digest_id,
            digest_key=ledger.key,
            template=ledger.template,
            transport=transport,
            token_for=token_for,
            policy=policy,
        )
    finally:
        transport.close()


def everyone(count: int) -> Counter[str]:
    """Each of the ledger's `count` readers, once: what a correct run delivers."""
    return Counter({f"r{n:04d}@example.org": 1 for n in range(count)})
