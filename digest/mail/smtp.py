"""The SMTP transport: a few long-lived connections, pipelined when the server allows.

smtplib opens each connection (TLS, EHLO, STARTTLS, AUTH). The transactions themselves
are written here because smtplib waits for a reply after every command: with RFC 2920
PIPELINING one message costs one round trip -- its content goes out together with the
next message's MAIL, RCPT and DATA -- instead of four. Replies still arrive one per
command, in order, so every message keeps its own exact result. A server that does not
offer PIPELINING gets the same commands in lock step.

One message has one recipient (each copy is personal), so a refused RCPT is that
subscriber's failure and never the batch's.
"""

from __future__ import annotations

import queue
import smtplib
import socket
import ssl
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from digest.errors import DeliveryError, DigestError, reason_of
from digest.mail.message import Envelope
from digest.mail.transport import Mailing, Outcome, failed, retry, sent
from digest.models import Subscriber
from digest.settings import Settings

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_MAX_LINE = 8192  # the longest reply line accepted, as smtplib


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    sender: str  # the envelope sender (MAIL FROM), where bounces go
    username: str | None = None
    password: str | None = None
    verify: bool = True
    ca_file: Path | None = None
    timeout: float = 30.0
    max_per_connection: int = 1000
    ehlo_name: str | None = None
    pipelining: bool = True
    connections: int = 1
    # VERP: each copy's own envelope sender, which the bounce names (see digest/mail/verp.py).
    return_path: Callable[[Subscriber], str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        d = settings.delivery
        return cls(
            host=d.smtp_host,
            port=d.smtp_port or _DEFAULT_PORTS[d.smtp_security],
            security=d.smtp_security,
            sender=settings.sender.address,
            username=d.smtp_username,
            password=d.smtp_password.get_secret_value() if d.smtp_password else None,
            verify=d.smtp_verify,
            ca_file=d.smtp_ca_file,
            timeout=d.smtp_timeout,
            max_per_connection=d.smtp_max_per_connection,
            ehlo_name=d.smtp_ehlo_name,
            pipelining=d.smtp_pipelining,
            connections=d.concurrency,
            return_path=_verp(settings),
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class _Unreachable(Exception):
    """No connection could be made; nothing was handed over."""


@dataclass(frozen=True, slots=True)
class _Reply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def _refusal(reply: _Reply, what: str) -> Outcome | None:
    """None when the reply is a success; else the message's outcome."""
    if 200 <= reply.code < 400:
        return None
    if 400 <= reply.code < 500:
        return retry(f"{what}: {reply}")
    return failed(f"{what}: {reply}")


def _dot_stuffed(data: bytes, dot_safe: bool = False) -> bytes:
    """The message as DATA content (RFC 5321 4.5.2), ending with CRLF.

    `dot_safe` data has no line starting with "."; scanning 20 KB for one costs more than
    everything else this function does.
    """
    if dot_safe:
        return data if data.endswith(b"\r\n") else data + b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    if b"\r\n." in data:  # a search is cheaper than a copy, and dots are rare
        data = data.replace(b"\r\n.", b"\r\n..")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


class _Copies:
    """A batch's personal copies, each made when first needed.

    The pipelined loop makes the next copy while the server is still taking in the last
    one, so the client's work and the server's overlap instead of taking turns.
    """

    def __init__(
        self,
        mailing: Mailing,
        batch: Sequence[Subscriber],
        sender: str,
        return_path: Callable[[Subscriber], str] | None = None,
    ) -> None:
        self._mailing = mailing
        self._batch = batch
        self._sender = sender
        self._return_path = return_path
        self._made: dict[int, tuple[Envelope, bytes]] = {}

    def __len__(self) -> int:
        return len(self._batch)

    def address(self, index: int) -> str:
        return self._batch[index].email

    def sender(self, index: int) -> str:
        """The envelope sender (MAIL FROM) of this copy."""
        if self._return_path is None:
            return self._sender
        return self._return_path(self._batch[index])

    def envelope(self, index: int) -> Envelope:
        return self._make(index)[0]

    def content(self, index: int) -> bytes:
        """The DATA content: dot-stuffed, with the final ".\r\n"."""
        return self._make(index)[1]

    def forget(self, index: int) -> None:
        self._made.pop(index, None)

    def _make(self, index: int) -> tuple[Envelope, bytes]:
        if index not in self._made:
            envelope = self._mailing.envelope(self._batch[index])
            content = _dot_stuffed(envelope.data, envelope.dot_safe)
            self._made[index] = (envelope, content + b".\r\n")
        return self._made[index]


class _Lost(Exception):
    """The connection broke; `in_doubt` when a message's content was sent unanswered."""

    def __init__(self, reason: str, in_doubt: bool) -> None:
        super().__init__(reason)
        self.in_doubt = in_doubt


class _Connection:
    """One open SMTP session; used by one thread at a time."""

    def __init__(self, smtp: smtplib.SMTP, config: SmtpConfig) -> None:
        self.smtp = smtp
        self.config = config
        self.pipelining = config.pipelining and smtp.has_extn("pipelining")
        self.smtputf8 = smtp.has_extn("smtputf8")
        self.count = 0
        self.broken = False
        self.replies = 0  # replies read in the current `steps`; 0 means nothing reached it
        self.refused_sender: _Reply | None = None
        # After smtplib's setup (EHLO, STARTTLS, AUTH) the transactions go straight to the
        # socket, through smtplib's own reader so that nothing it buffered is lost.
        assert smtp.sock is not None
        self._socket = smtp.sock
        if smtp.file is None:
            smtp.file = smtp.sock.makefile("rb")
        self._file = smtp.file

    @property
    def room(self) -> int:
        return max(self.config.max_per_connection - self.count, 1)

    def steps(
        self, copies: _Copies, indexes: Sequence[int], outcomes: dict[int, Outcome]
    ) -> Generator[None, None, None]:
        """Send each copy in its own transaction, putting its outcome in `outcomes`.

        A generator: it yields whenever it has written and would now wait for replies,
        so one thread can keep several connections busy (see `SmtpTransport.deliver`).
        """
        self.replies = 0
        try:
            if self.pipelining:
                yield from self._pipelined(copies, indexes, outcomes)
            else:
                for index in indexes:
                    yield from self._lockstep(copies, index, outcomes)
                    copies.forget(index)
        except _Lost as lost:
            self.broken = True
            doubt = " after the message was sent" if lost.in_doubt else ""
            unanswered = [i for i in indexes if i not in outcomes]
            for position, index in enumerate(unanswered):
                reason = f"connection lost{doubt if position == 0 else ''}: {lost}"
                outcomes[index] = retry(reason)

    # -- the two ways of speaking ------------------------------------------------------

    def _pipelined(
        self, copies: _Copies, indexes: Sequence[int], outcomes: dict[int, Outcome]
    ) -> Iterator[None]:
        self._write(self._opening(copies, indexes[0]))
        copies.content(indexes[0])  # made while the server answers the opening
        yield
        reset = False
        for position, index in enumerate(indexes):
            following = indexes[position + 1] if position + 1 < len(indexes) else None
            upcoming = b"" if following is None else self._opening(copies, following)
            if reset:
                self._read()
            mail, rcpt, data = self._read(), self._read(), self._read()
            self.count += 1
            refused = self._sender_refusal(mail)
            refused = refused or self._recipient_refusal(copies.address(index), rcpt)
            if data.code == 354:
                # Had every recipient been refused the server must not say 354; if it does,
                # an empty message ends the transaction without delivering anything.
                self._write((b".\r\n" if refused else copies.content(index)) + upcoming)
                if following is not None:
                    copies.content(following)  # made while the server takes this one in
                yield
                end = self._read(in_doubt=refused is None)
                outcome = refused or _refusal(end, "message")
                outcomes[index] = outcome or sent(copies.envelope(index).message_id)
                reset = False
            else:
                outcomes[index] = refused or _refusal(data, "DATA") or failed(f"DATA: {data}")
                self._write(b"RSET\r\n" + upcoming)
                yield
                reset = True
            copies.forget(index)
        if reset:
            self._read()

    def _lockstep(
        self, copies: _Copies, index: int, outcomes: dict[int, Outcome]
    ) -> Iterator[None]:
        address = copies.address(index)
        mail = yield from self._ask(self._mail_command(copies.sender(index), address))
        self.count += 1
        refused = self._sender_refusal(mail)
        if refused is None:
            rcpt = yield from self._ask(self._rcpt_command(address))
            refused = self._recipient_refusal(address, rcpt)
        if refused is None:
            data = yield from self._ask(b"DATA\r\n")
            refused = _refusal(data, "DATA")
            if refused is None:
                end = yield from self._ask(copies.content(index), in_doubt=True)
                outcome = _refusal(end, "message")
                outcomes[index] = outcome or sent(copies.envelope(index).message_id)
                return
        outcomes[index] = refused
        yield from self._ask(b"RSET\r\n")

    # -- commands and replies ----------------------------------------------------------

    def _mail_command(self, sender: str, address: str) -> bytes:
        wide = not (sender + address).isascii()
        option = " SMTPUTF8" if wide and self.smtputf8 else ""
        return f"MAIL FROM:<{sender}>{option}\r\n".encode()

    @staticmethod
    def _rcpt_command(address: str) -> bytes:
        return f"RCPT TO:<{address}>\r\n".encode()

    def _opening(self, copies: _Copies, index: int) -> bytes:
        address = copies.address(index)
        mail = self._mail_command(copies.sender(index), address)
        return mail + self._rcpt_command(address) + b"DATA\r\n"

    def _recipient_refusal(self, address: str, rcpt: _Reply) -> Outcome | None:
        if not address.isascii() and not self.smtputf8:
            return failed("the address needs SMTPUTF8, which the server does not offer")
        return _refusal(rcpt, "recipient")

    def _sender_refusal(self, mail: _Reply) -> Outcome | None:
        # A refused sender is the operator's setting, never a reader's bounce: retry it,
        # and let the transport stop the run when nothing else got through.
        if mail.code < 400:
            return None
        if mail.code >= 500:
            self.refused_sender = mail
        return retry(f"sender: {mail}", unavailable=mail.code >= 500)

    def _ask(self, line: bytes, *, in_doubt: bool = False) -> Generator[None, None, _Reply]:
        self._write(line)
        yield
        return self._read(in_doubt=in_doubt)

    def _write(self, data: bytes) -> None:
        try:
            self._socket.sendall(data)
        except OSError as exc:
            raise _Lost(reason_of(exc), in_doubt=False) from None

    def _read(self, *, in_doubt: bool = False) -> _Reply:
        # smtplib's getreply, without what a pipelined sender pays for four times a
        # message: debug logging and a decode per line (RFC 5321 4.2: "ddd-" continues).
        lines: list[bytes] = []
        line = b""
        try:
            while True:
                line = self._file.readline(_MAX_LINE)
                if not line.endswith(b"\n"):
                    raise OSError("connection closed" if not line else "reply line too long")
                lines.append(line[4:].strip())
                if line[3:4] != b"-":
                    break
            code = int(line[:3])
        except OSError as exc:
            raise _Lost(reason_of(exc), in_doubt=in_doubt) from None
        except ValueError:
            raise _Lost(f"not an SMTP reply: {line[:40]!r}", in_doubt=in_doubt) from None
        reply = _Reply(code, b" ".join(lines).decode("utf-8", "replace"))
        if code == 421:
            # The server is closing the connection (RFC 5321 3.8), and has not taken
            # whatever this reply answers: that message and the rest wait for a new one.
            raise _Lost(str(reply), in_doubt=False)
        self.replies += 1
        return reply

    def close(self) -> None:
        try:
            if not self.broken:
                self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        self.smtp.close()


class SmtpTransport:
    """Up to `connections` reused connections, kept busy together by the calling thread.

    One `deliver` call spreads its batch over the connections and drives them in turn:
    each writes its next message and yields, and by the time the round comes back its
    replies are in. Threads would do the same with a lock for every reply (Python's GIL),
    which costs more than the sending itself on a fast network.
    """

    name = "smtp"
    max_batch = 10_000
    multiplexed = True  # the ledger loop needs one worker; the connections are here

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: queue.LifoQueue[_Connection] = queue.LifoQueue()
        self._tls = _tls_context(config) if config.security != "none" else None
        # smtplib would look the name up again for every connection.
        self._ehlo_name = config.ehlo_name or socket.getfqdn()

    def deliver(self, mailing: Mailing, batch: Sequence[Subscriber]) -> list[Outcome]:
        copies = _Copies(mailing, batch, self.config.sender, self.config.return_path)
        outcomes: dict[int, Outcome] = {}
        todo = list(range(len(batch)))
        replaced_stale = False
        refused: _Reply | None = None
        while todo:
            try:
                conns = self._checkout(min(self.config.connections, len(todo)))
            except _Unreachable as exc:
                outcomes |= dict.fromkeys(todo, retry(str(exc), unavailable=True))
                break
            shares = list(zip(conns, _split(todo, [conn.room for conn, _ in conns]), strict=True))
            try:
                _drive([conn.steps(copies, chunk, outcomes) for (conn, _), chunk in shares])
            except BaseException:
                for conn, _ in conns:
                    conn.broken = True  # left in the middle of a transaction
                raise
            finally:
                for conn, _ in conns:
                    self._checkin(conn)
            for (conn, reused), chunk in shares:
                refused = refused or conn.refused_sender
                if conn.broken and reused and conn.replies == 0 and not replaced_stale:
                    # An idle connection the server had closed meanwhile: nothing was
                    # sent over it, so its share goes out again at once, on a new one.
                    replaced_stale = True
                    for index in chunk:
                        del outcomes[index]
            todo = [index for index in todo if index not in outcomes]
        if refused and not any(o.status == "sent" for o in outcomes.values()):
            raise DeliveryError(
                f"The SMTP server {self.config.where} refused the sender address "
                f"{self.config.sender} ({refused}); check sender.address."
            )
        return [outcomes[index] for index in range(len(batch))]

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def _checkout(self, count: int) -> list[tuple[_Connection, bool]]:
        """Up to `count` connections, idle ones first; (connection, reused) each.

        Fewer when no more can be opened; _Unreachable when none can.
        """
        conns: list[tuple[_Connection, bool]] = []
        try:
            while len(conns) < count:
                try:
                    conns.append((self._idle.get_nowait(), True))
                except queue.Empty:
                    conns.append((self._connect(), False))
        except _Unreachable:
            if not conns:
                raise
        except DigestError:
            for conn, _ in conns:
                self._checkin(conn)
            raise
        return conns

    def _checkin(self, conn: _Connection) -> None:
        if conn.broken or conn.count >= self.config.max_per_connection:
            conn.close()
        else:
            self._idle.put(conn)

    def _connect(self) -> _Connection:
        c = self.config
        smtp: smtplib.SMTP | None = None
        try:
            if c.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    c.host, c.port, self._ehlo_name, timeout=c.timeout, context=self._tls
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, self._ehlo_name, timeout=c.timeout)
            smtp.ehlo_or_helo_if_needed()
            if c.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"The SMTP server {c.where} does not offer STARTTLS; use its TLS port "
                        "with delivery.smtp_security = 'tls', or 'none' only on a trusted network."
                    )
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if c.username:
                smtp.login(c.username, c.password or "")
            return _Connection(smtp, c)
        except DigestError:
            _discard(smtp)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            _discard(smtp)
            text = exc.smtp_error
            text = text.decode(errors="replace") if isinstance(text, bytes) else text
            raise DeliveryError(
                f"The SMTP server {c.where} refused the login for {c.username!r} "
                f"({exc.smtp_code} {text}); check "
                "delivery.smtp_username and DIGEST_DELIVERY__SMTP_PASSWORD."
            ) from None
        except smtplib.SMTPNotSupportedError:
            _discard(smtp)
            raise DeliveryError(
                f"The SMTP server {c.where} does not offer a login (AUTH); check "
                "delivery.smtp_security, or unset delivery.smtp_username."
            ) from None
        except ssl.SSLCertVerificationError as exc:
            _discard(smtp)
            raise DeliveryError(
                f"Cannot verify the TLS certificate of {c.where} ({exc.verify_message}); set "
                "delivery.smtp_ca_file to the CA that signed it, or delivery.smtp_verify = "
                "false for a test server."
            ) from None
        except ssl.SSLError as exc:
            _discard(smtp)
            raise DeliveryError(
                f"TLS with the SMTP server {c.where} failed ({exc.reason}); check "
                "delivery.smtp_security and delivery.smtp_port."
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _discard(smtp)
            raise _Unreachable(
                f"cannot connect to the SMTP server {c.where} ({reason_of(exc)})"
            ) from None


def _split(todo: list[int], rooms: list[int]) -> list[list[int]]:
    """`todo` in contiguous, nearly equal shares, one per connection, none over its room."""
    chunks: list[list[int]] = []
    start = 0
    for position, room in enumerate(rooms):
        share = -(-(len(todo) - start) // (len(rooms) - position))  # ceiling division
        chunks.append(todo[start : start + min(share, room)])
        start += len(chunks[-1])
    return chunks


def _drive(conversations: list[Generator[None, None, None]]) -> None:
    """Advance each conversation in turn until all are over."""
    active = conversations
    try:
        while active:
            active = [c for c in active if next(c, StopIteration) is not StopIteration]
    finally:
        for conversation in conversations:
            conversation.close()


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(
            f"Cannot read the CA file {config.ca_file} ({exc.strerror or exc}); "
            "fix delivery.smtp_ca_file."
        ) from None
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _discard(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _verp(settings: Settings) -> Callable[[Subscriber], str] | None:
    """Each subscriber's signed bounce address, when bounces.verp_address is set."""
    if settings.bounces is None or not settings.bounces.verp_address:
        return None
    from digest.mail.verp import verp_sender
    from digest.subscribers import secret_key

    key, _ = secret_key(settings)
    address = settings.bounces.verp_address
    return lambda subscriber: verp_sender(address, key, subscriber.id)
