"""A real IMAP server for the bounce tests: Debian's Dovecot, started in a temporary folder.

Its own minimal dovecot.conf: plain IMAP on 127.0.0.1 and a free port, one user in a
passwd file, maildirs in the folder, logs to a file. Dovecot never runs mail processes as
root, so when the tests run as root the mail belongs to the package's `dovenull` user.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.mailservers import Certificates, free_port

DOVECOT = os.environ.get("DIGEST_DOVECOT", "/usr/sbin/dovecot")
USER = "bounces@example.org"
PASSWORD = "imap-secret-1"


@dataclass(frozen=True)
class ImapServer:
    host: str
    port: int  # plain IMAP, with STARTTLS when the server has a certificate
    user: str
    password: str
    log: Path
    tls_port: int | None = None  # implicit TLS (IMAPS), when it has one

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        imap.login(self.user, self.password)
        return imap

    def append(self, message: bytes, folder: str = "INBOX") -> None:
        """Deliver a message into a folder, as the mail server would."""
        imap = self.connect()
        try:
            imap.create(f'"{folder}"')  # already there for INBOX: the error reply is ignored
            status, reply = imap.append(f'"{folder}"', "", None, message)
            assert status == "OK", reply
        finally:
            imap.logout()

    def subjects(self, folder: str) -> list[str]:
        """The Subject of each message in a folder, in order."""
        imap = self.connect()
        try:
            status, _ = imap.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, data = imap.search(None, "ALL")
            found = []
            for number in data[0].split():
                _, parts = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                raw = parts[0][1] if isinstance(parts[0], tuple) else b""
                found.append(raw.decode().partition(":")[2].strip())
            return found
        finally:
            imap.logout()


def _users() -> tuple[str, str, pwd.struct_passwd]:
    """Dovecot's internal and login users, and the owner of the mail."""
    if os.geteuid() != 0:  # every service runs as ourselves
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_name, me
    # Root: the Debian package's own users; Dovecot refuses mail owned by root.
    return "dovecot", "dovenull", pwd.getpwnam("dovenull")


@contextlib.contextmanager
def dovecot(
    certificates: Certificates | None = None, capabilities: str | None = None
) -> Iterator[ImapServer]:
    """Dovecot on a free port with one user, stopped and removed afterwards.

    With certificates it also offers STARTTLS on that port, and implicit TLS on another.
    `capabilities` replaces what it announces after login (say, an older server's).
    """
    if not Path(DOVECOT).exists():
        raise RuntimeError(
            f"{DOVECOT} is missing; install Debian's dovecot-imapd (`make test` does)."
        )
    folder = Path(tempfile.mkdtemp(prefix="digest-imap-"))
    # The mail processes run as the mail's owner and must reach their folder.
    os.chmod(folder, 0o755)  # noqa: S103
    internal, login, owner = _users()
    uid, gid = owner.pw_uid, owner.pw_gid
    mail = folder / "mail"
    mail.mkdir()
    os.chown(mail, uid, gid)
    port = free_port()
    tls_port = free_port() if certificates else None
    if certificates:
        tls = f"ssl = yes\nssl_cert = <{certificates.cert}\nssl_key = <{certificates.key}"
    else:
        tls = "ssl = no"
    (folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{mail}::\n")
    config = folder / "dovecot.conf"
    config.write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
{tls}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{mail}/Maildir
{f"imap_capability = {capabilities}" if capabilities else ""}
passdb {{
  driver = passwd-file
  args = {folder}/passwd
}}
userdb {{
  driver = passwd-file
  args = {folder}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port or 0}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
    )
    # The daemon keeps any inherited pipe open: its output goes to a file, never to us.
    with (folder / "start.out").open("w") as out:
        started = subprocess.run(
            [DOVECOT, "-c", str(config)], stdout=out, stderr=out, check=False, timeout=30
        )
    log = folder / "dovecot.log"
    try:
        if started.returncode != 0:
            raise RuntimeError(f"dovecot did not start: {(folder / 'start.out').read_text()}")
        _wait_for(port, log)
        if tls_port:
            _wait_for(tls_port, log)
        yield ImapServer("127.0.0.1", port, USER, PASSWORD, log, tls_port)
    finally:
        # Dovecot takes about 3 s to stop (it lets its login processes finish); the next
        # test has its own folder and port, so it need not wait for that.
        stopping = subprocess.Popen(
            [DOVECOT, "-c", str(config), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _STOPPING.append((stopping, folder))


# Servers being stopped; their folders are removed once they are down, at exit at the latest.
_STOPPING: list[tuple[subprocess.Popen[bytes], Path]] = []


@atexit.register
def _finish_stopping() -> None:
    for process, folder in _STOPPING:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for(port: int, log: Path) -> None:
    for _ in range(100):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    text = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"dovecot did not listen on port {port}:\n{text[-2000:]}")
