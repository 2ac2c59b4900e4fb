"""The bounce mailbox over IMAP (stdlib imaplib): list, fetch and move messages by UID.

UIDs, not sequence numbers: moving a message renumbers the ones after it, a UID stays.
Every failure a user can fix ends in one `MailboxError` sentence naming the setting.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Iterator
from types import TracebackType

from digest.errors import ConfigError, MailboxError
from digest.settings import BouncesSettings

_FETCHED_SIZE = re.compile(rb"\{(\d+)\}$")


class BounceMailbox:
    """One IMAP session on the bounce folder: `with BounceMailbox(...) as box: ...`."""

    def __init__(self, config: BouncesSettings) -> None:
        if config.password is None or not config.password.get_secret_value():
            raise ConfigError(
                "bounces.password is not set; set the environment variable "
                "DIGEST_BOUNCES__PASSWORD to the mailbox's password."
            )
        self.config = config
        self.where = f"{config.host}:{config.imap_port}"
        self._imap: imaplib.IMAP4 | None = None
        self._capabilities: set[str] = set()

    def __enter__(self) -> BounceMailbox:
        self._imap = self._login()
        try:
            # What imaplib kept is what the server offered before login; MOVE and UIDPLUS
            # are usually announced only after it (Dovecot does so).
            status, reply = self._imap.capability()
            last = reply[-1] if status == "OK" and reply else b""
            if isinstance(last, bytes):
                self._capabilities = set(last.decode("ascii", "replace").upper().split())
            status, reply = self._imap.select(_quoted(self.config.folder))
            if status != "OK":
                raise MailboxError(
                    f"The mailbox has no folder {self.config.folder!r} ({_text(reply)}); "
                    "check bounces.folder."
                )
            # CREATE of a folder that exists fails harmlessly; it is the cheapest check.
            self._imap.create(_quoted(self.config.processed_folder))
        except (imaplib.IMAP4.abort, OSError) as exc:
            self.close()
            raise MailboxError(
                f"The connection to the IMAP server {self.where} dropped ({exc}); "
                "run `digest bounces` again."
            ) from None
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        with contextlib.suppress(imaplib.IMAP4.error, OSError):  # the session is over anyway
            imap.logout()

    def uids(self) -> list[bytes]:
        """UIDs of the messages now in the folder, oldest first."""
        data = self._command("SEARCH", "ALL")
        first = data[0] if data else b""
        return first.split() if isinstance(first, bytes) else []

    def fetch(self, uid: bytes) -> bytes | None:
        """The message's bytes, without marking it read; None if it is gone meanwhile."""
        for item in self._command("FETCH", uid, "(BODY.PEEK[])"):
            if isinstance(item, tuple) and _FETCHED_SIZE.search(item[0]):
                body: bytes = item[1]
                return body
        return None

    def move(self, uid: bytes) -> None:
        """Move the message to the processed folder."""
        target = _quoted(self.config.processed_folder)
        if "MOVE" in self._capabilities:  # RFC 6851, atomic
            self._command("MOVE", uid, target)
            return
        self._command("COPY", uid, target)
        self._command("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in self._capabilities:  # expunges this message only
            self._command("EXPUNGE", uid)
        else:
            self._session().expunge()

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """(uid, bytes) of each message in the folder, one fetch at a time."""
        for uid in self.uids():
            data = self.fetch(uid)
            if data is not None:
                yield uid, data

    def _session(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise RuntimeError("the mailbox is used outside its `with` block")
        return self._imap

    def _command(self, command: str, *args: object) -> list[object]:
        try:
            status, data = self._session().uid(command, *args)  # type: ignore[arg-type]
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise MailboxError(
                f"The connection to the IMAP server {self.where} dropped ({exc}); run "
                "`digest bounces` again: what was recorded stays recorded."
            ) from None
        if status != "OK":
            raise MailboxError(
                f"The IMAP server {self.where} refused UID {command} ({_text(data)}); "
                "check that the account may read and move mail in bounces.folder."
            )
        return list(data)

    def _login(self) -> imaplib.IMAP4:
        config = self.config
        password = config.password.get_secret_value() if config.password else ""
        try:
            if config.security == "ssl":
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    config.host,
                    config.imap_port,
                    ssl_context=self._tls(),
                    timeout=config.timeout,
                )
            else:
                imap = imaplib.IMAP4(config.host, config.imap_port, timeout=config.timeout)
                if config.security == "starttls":
                    imap.starttls(self._tls())
        except ssl.SSLCertVerificationError as exc:
            raise MailboxError(
                f"The IMAP server {self.where} has a certificate this machine does not trust "
                f"({exc.verify_message}); set bounces.ca_file to the CA that signed it."
            ) from None
        except ssl.SSLError as exc:
            raise MailboxError(
                f"TLS with the IMAP server {self.where} failed ({exc.reason}); check "
                "bounces.security (ssl for port 993, starttls for 143)."
            ) from None
        except imaplib.IMAP4.error as exc:
            raise MailboxError(
                f"The IMAP server {self.where} does not speak IMAP as configured ({exc}); "
                "check bounces.port and bounces.security."
            ) from None
        except OSError as exc:
            raise MailboxError(
                f"Cannot reach the IMAP server {self.where} ({exc.strerror or exc}); "
                "check bounces.host and bounces.port."
            ) from None
        try:
            imap.login(config.username, password)
        except imaplib.IMAP4.error:
            _quietly_close(imap)
            raise MailboxError(
                f"The IMAP server {self.where} refused the login of {config.username}; check "
                "bounces.username and DIGEST_BOUNCES__PASSWORD."
            ) from None
        except OSError as exc:
            _quietly_close(imap)
            raise MailboxError(
                f"The connection to the IMAP server {self.where} dropped at login "
                f"({exc.strerror or exc}); check bounces.security."
            ) from None
        return imap

    def _tls(self) -> ssl.SSLContext:
        config = self.config
        try:
            context = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"Cannot read the CA file {config.ca_file} ({exc}); fix bounces.ca_file."
            ) from None
        if not config.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string (imaplib sends arguments as they are)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(reply: object) -> str:
    if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
        return reply[0].decode("utf-8", "replace")
    return str(reply)


def _quietly_close(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError):
        imap.shutdown()
