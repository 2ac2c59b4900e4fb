"""Bounces: reports read from a real IMAP server (Dovecot) through `digest bounces`.

A digest goes out (to the outbox), bounce reports of several shapes arrive in the
mailbox, and the command records them on the deliveries and the subscribers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest import store
from digest.mail.dsn import read_bounce
from digest.mail.unsubscribe_request import read_unsubscribe_request
from digest.settings import load_settings
from tests import dsn_samples
from tests.conftest import SAMPLES, write_config
from tests.imapserver import ImapServer, dovecot
from tests.mailservers import Certificates, free_port, make_certificates

ANA, JOSE, ZOE, DAN = (
    "ana.lindgren@example.org",
    "jose.nunez@example.com",
    "zoe.park@example.org",
    "dan@example.net",
)


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    with dovecot() as server:
        yield server


def _bounces_section(port: int, user: str, extra: str = "") -> str:
    return f"""
[bounces]
host = "127.0.0.1"
port = {port}
security = "none"
username = "{user}"
processed_folder = "Processed bounces"
{extra}
"""


@pytest.fixture
def config_file(tmp_path: Path, database_url: str, imap: ImapServer) -> Path:
    return write_config(tmp_path, _bounces_section(imap.port, imap.user), database_url=database_url)


@pytest.fixture
def password(imap: ImapServer) -> dict[str, str]:
    return {"DIGEST_BOUNCES__PASSWORD": imap.password}


def _send_digest(cli, tmp_path: Path, config_file: Path) -> dict[str, str]:
    """Send today's digest to four subscribers; return each one's Message-ID."""
    assert cli("subscribers", "import", str(SAMPLES / "subscribers.csv")).returncode == 0
    assert cli("subscribers", "add", DAN).returncode == 0
    sent = cli("run")
    assert sent.returncode == 0, sent.stderr
    engine = store.connect(load_settings(config_file).db_url)
    with store.transaction(engine) as conn:
        rows = conn.execute(
            store.deliveries.select()
            .join(store.subscribers)
            .with_only_columns(store.subscribers.c.email, store.deliveries.c.message_id)
        ).all()
    engine.dispose()
    ids = dict(rows)
    assert set(ids) == {ANA, JOSE, ZOE, DAN}
    return ids


def _state(config_file: Path) -> dict[str, object]:
    """Every subscriber's status, delivery row and history of events."""
    engine = store.connect(load_settings(config_file).db_url)
    found: dict[str, object] = {}
    with store.transaction(engine) as conn:
        for person in store.list_subscribers(conn):
            delivery = conn.execute(
                store.deliveries.select().where(store.deliveries.c.subscriber_id == person.id)
            ).one()
            history = [event for event, _ in store.subscriber_history(conn, person.id)]
            found[person.email] = (person.status, delivery.status, delivery.error, history)
    engine.dispose()
    return found


def _row(output: str, label: str) -> int:
    match = re.search(rf"{label}\s*│\s*(\d+)", output)
    assert match, output
    return int(match.group(1))


@pytest.mark.both_stores
def test_bounce_reports_of_every_shape_reach_their_subscribers(
    cli, tmp_path, config_file, imap, password
):
    ids = _send_digest(cli, tmp_path, config_file)
    imap.append(dsn_samples.postfix_hard(ANA, ids[ANA]))  # hard, by Message-ID
    imap.append(dsn_samples.mailbox_full(JOSE, ids[JOSE]))  # soft, by Message-ID
    # Exim's report for Zoe names a forwarding address; the Message-ID still finds her.
    imap.append(dsn_samples.exim_failure("zoe.forwarded@example.net", ids[ZOE]))
    imap.append(dsn_samples.without_message_id(DAN.upper()))  # hard, by address only
    imap.append(dsn_samples.unrelated())
    imap.append(dsn_samples.malformed())
    imap.append(dsn_samples.postfix_hard("stranger@example.com", "<not.ours@example.com>"))

    result = cli("bounces", env=password)

    assert result.returncode == 0, result.stderr
    assert (_row(result.stdout, "Messages read"), _row(result.stdout, "Hard bounces recorded")) == (
        7,
        3,
    )
    assert _row(result.stdout, "Soft bounces recorded") == 1
    assert _row(result.stdout, "Subscribers marked bounced") == 3
    assert _row(result.stdout, "Moved to the processed folder") == 4
    assert _row(result.stdout, "Left in the folder") == 3
    assert "Loved today's ferry story" in result.stdout
    assert "not a bounce report" in result.stdout
    assert "names no subscriber" in result.stdout

    state = _state(config_file)
    assert state[ANA][:2] == ("bounced", "bounced")
    assert "5.1.1" in state[ANA][2]
    assert state[ANA][3] == ["active", "hard_bounce", "bounced"]
    # One soft bounce of three allowed: still active, the delivery says what happened.
    assert state[JOSE][:3] == ("active", "soft_bounced", "bounce 4.2.2 452 4.2.2 Mailbox full")
    assert state[JOSE][3] == ["active", "soft_bounce"]
    assert "soft_bounced 1" in cli("subscribers", "show", JOSE).stdout
    assert state[ZOE][:2] == ("bounced", "bounced")
    assert state[DAN][:2] == ("bounced", "bounced")
    assert "5.2.1" in state[DAN][2]

    # Recognized reports are filed away; the rest wait for a person.
    assert sorted(imap.subjects("INBOX")) == [
        "Loved today's ferry story",
        "Undelivered Mail",
        "Undelivered Mail Returned to Sender",
    ]
    assert len(imap.subjects("Processed bounces")) == 4

    # Reading again, and the same report delivered a second time, change nothing.
    imap.append(dsn_samples.postfix_hard(ANA, ids[ANA]))
    again = cli("bounces", env=password)
    assert again.returncode == 0, again.stderr
    assert _row(again.stdout, "Messages read") == 4
    assert _row(again.stdout, "Already recorded before") == 1
    assert _row(again.stdout, "Hard bounces recorded") == 0
    assert _row(again.stdout, "Moved to the processed folder") == 1
    assert _state(config_file) == state
    assert len(imap.subjects("Processed bounces")) == 5


def _two_digests(config_file: Path) -> tuple[int, list[int]]:
    """One active subscriber with deliveries of two digests; return their ids."""
    from datetime import date

    engine = store.connect(load_settings(config_file).db_url)
    with store.transaction(engine) as conn:
        subscriber_id = store.insert_subscriber(conn, ANA, None, (), "active")
        digests = [
            store.create_digest(
                conn,
                key=f"daily/2026-12-0{day}",
                list_name="daily",
                day=date(2026, 12, day),
                subject="s",
                html="h",
                text="t",
                items=[],
            )
            for day in (1, 2)
        ]
    engine.dispose()
    assert None not in digests
    return subscriber_id, [d for d in digests if d is not None]


@pytest.mark.both_stores
@pytest.mark.both_stores
def test_an_unsubscribe_sent_to_the_list_mailto_is_honoured(
    cli, tmp_path, config_file, imap, password
):
    _send_digest(cli, tmp_path, config_file)
    imap.append(dsn_samples.unsubscribe_request(f"Ana <{ANA.upper()}>"))
    imap.append(dsn_samples.unsubscribe_request(ANA))  # the button pressed twice
    # A forged From that the receiving server saw fail DMARC changes nothing.
    imap.append(dsn_samples.unsubscribe_request(JOSE, authentication="dmarc=fail"))
    imap.append(dsn_samples.unsubscribe_request("stranger@example.com"))

    result = cli("bounces", env=password)

    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, "Unsubscribed by email") == 1
    assert _row(result.stdout, "Moved to the processed folder") == 2
    assert _row(result.stdout, "Left in the folder") == 2
    assert "failed DMARC" in result.stdout and "names no subscriber" in result.stdout
    state = _state(config_file)
    assert state[ANA][0] == "unsubscribed" and state[ANA][3][-1] == "unsubscribed"
    assert state[JOSE][0] == "active"
    # Read again: the two requests left behind are still not acted on, nothing repeats.
    again = cli("bounces", env=password)
    assert _row(again.stdout, "Messages read") == 2
    assert _row(again.stdout, "Unsubscribed by email") == 0


@pytest.mark.parametrize(
    ("subject", "is_request"),
    [
        ("unsubscribe", True),
        ("UNSUBSCRIBE me", True),
        ("Re: unsubscribe", True),
        ("Please do not unsubscribe me", False),
        ("Loved it", False),
    ],
)
def test_what_counts_as_an_unsubscribe_request(subject, is_request):
    data = dsn_samples.unsubscribe_request(ANA).replace(
        b"Subject: unsubscribe", b"Subject: " + subject.encode()
    )
    request = read_unsubscribe_request(data)
    assert (request is not None) == is_request
    if request is not None:
        assert request.address == ANA and request.trusted


def test_soft_bounces_mark_bounced_at_the_threshold_of_distinct_digests(config_file):
    subscriber_id, (first, second) = _two_digests(config_file)
    engine = store.connect(load_settings(config_file).db_url)

    def soft(report: str, digest_id: int) -> str:
        with store.transaction(engine) as conn:
            return store.record_bounce(
                conn,
                report_id=report,
                target=store.BouncedDelivery(subscriber_id, digest_id),
                hard=False,
                address=ANA,
                status="4.2.2",
                diagnostic="Mailbox full",
                soft_threshold=2,
            )

    # A delay warning and the final report of the same digest count once.
    assert soft("<warning@relay>", first) == "recorded"
    assert soft("<final@relay>", first) == "recorded"
    assert soft("<final@relay>", first) == "duplicate"
    assert soft("<next@relay>", second) == "marked_bounced"
    with store.transaction(engine) as conn:
        assert store.get_subscriber(conn, subscriber_id).status == "bounced"
        history = [event for event, _ in store.subscriber_history(conn, subscriber_id)]
        assert len(store.subscriber_bounces(conn, subscriber_id)) == 3
    assert history == ["active", "soft_bounce", "soft_bounce", "soft_bounce", "bounced"]
    engine.dispose()


def test_a_wrong_password_is_one_sentence(cli, imap):
    result = cli("bounces", env={"DIGEST_BOUNCES__PASSWORD": "not-the-password"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "refused the login of bounces@example.org" in result.stderr
    assert "DIGEST_BOUNCES__PASSWORD" in result.stderr
    assert imap.subjects("INBOX") == []


def test_an_unreachable_server_is_one_sentence(cli, tmp_path, database_url):
    closed = free_port()
    config = write_config(
        tmp_path, _bounces_section(closed, "someone@example.org"), database_url=database_url
    )
    result = cli(
        "--config", str(config), "bounces", env={"DIGEST_BOUNCES__PASSWORD": "x"}, config=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Cannot reach the IMAP server 127.0.0.1:{closed}" in result.stderr
    assert "bounces.host" in result.stderr


def test_the_password_comes_from_the_environment_only(cli, tmp_path, database_url):
    section = _bounces_section(143, "someone@example.org", 'password = "written-down"')
    config = write_config(tmp_path, section, database_url=database_url)
    result = cli("--config", str(config), "bounces", config=False)
    assert result.returncode == 1
    assert "bounces.password must not be written in" in result.stderr
    assert "DIGEST_BOUNCES__PASSWORD" in result.stderr

    without = write_config(
        tmp_path, _bounces_section(143, "someone@example.org"), database_url=database_url
    )
    result = cli("--config", str(without), "bounces", config=False)
    assert result.returncode == 1
    assert "bounces.password is not set" in result.stderr


def test_bounces_without_a_mailbox_says_what_to_add(cli, tmp_path, database_url):
    config = write_config(tmp_path, database_url=database_url)
    result = cli("--config", str(config), "bounces", config=False)
    assert result.returncode == 1
    assert "add a [bounces] section" in result.stderr


def test_the_scheduler_reads_bounces_when_a_mailbox_is_configured(config_file, tmp_path):
    from digest.schedule import job_specs

    specs = {spec.id: spec for spec in job_specs(load_settings(config_file))}
    assert specs["bounces"].when == "every 30 min"
    (tmp_path / "plain").mkdir()
    plain = load_settings(write_config(tmp_path / "plain"))
    assert "bounces" not in {spec.id for spec in job_specs(plain)}


@pytest.mark.parametrize(
    ("sample", "address", "hard", "status", "has_original"),
    [
        (dsn_samples.postfix_hard(ANA, "<m.1@example.org>"), ANA, True, "5.1.1", True),
        (dsn_samples.mailbox_full(ANA, "<m.1@example.org>"), ANA, False, "4.2.2", True),
        (dsn_samples.exim_failure(ANA, "<m.1@example.org>"), ANA, True, "5.1.1", True),
        (dsn_samples.without_message_id(ANA), ANA, True, "5.2.1", False),
        (
            dsn_samples.mailbox_full(ANA, "<m.1@example.org>").replace(
                b"Action: failed", b"Action: delayed"
            ),
            ANA,
            False,
            "4.2.2",
            True,
        ),
    ],
    ids=["postfix-5.1.1", "mailbox-full-4.2.2", "exim", "no-message-id", "delay-warning"],
)
def test_each_report_shape_is_read(sample, address, hard, status, has_original):
    bounce = read_bounce(sample)
    assert bounce is not None
    [failure] = bounce.failures
    assert (failure.address, failure.hard, failure.status) == (address, hard, status)
    assert bounce.original_message_id == ("<m.1@example.org>" if has_original else None)


@pytest.mark.parametrize(
    "data",
    [
        dsn_samples.unrelated(),
        dsn_samples.malformed(),
        b"",
        b"\xff\xfe\x00 not mail at all",
        b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: message/rfc822\r\n",
    ],
)
def test_anything_else_is_not_a_bounce_and_never_raises(data):
    assert read_bounce(data) is None


def test_verp_names_the_subscriber_when_the_report_names_nothing_else(
    cli, tmp_path, database_url, imap, password
):
    from tests.mailservers import smtp_server

    section = _bounces_section(imap.port, imap.user, 'verp_address = "bounces@example.org"')
    config = write_config(tmp_path, section, database_url=database_url)
    assert cli("--config", str(config), "subscribers", "add", ZOE, config=False).returncode == 0
    assert cli("--config", str(config), "subscribers", "add", DAN, config=False).returncode == 0
    with smtp_server() as server:
        env = server.settings_env() | {
            "DIGEST_DELIVERY__TEST_MODE": "true",
        }
        sent = cli("--config", str(config), "run", env=env, config=False)
        assert sent.returncode == 0, sent.stderr
        senders = {r.recipient: r.sender for r in server.handler.received}
    # Each copy has its own signed envelope sender; the From header is unchanged.
    assert set(senders) == {ZOE, DAN}
    for sender in senders.values():
        assert re.fullmatch(r"bounces\+\d+\.[\w-]+@example\.org", sender), sender
    assert senders[ZOE] != senders[DAN]

    # Zoe's mail is forwarded elsewhere, and the report returns nothing of ours: only the
    # address it was delivered to (her VERP address) names her.
    imap.append(dsn_samples.without_message_id("zoe@elsewhere.example", senders[ZOE]))
    forged = re.sub(r"\.[\w-]+@", ".forged@", senders[DAN])
    imap.append(dsn_samples.without_message_id("dan@elsewhere.example", forged))

    result = cli("--config", str(config), "bounces", env=password, config=False)

    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, "Hard bounces recorded") == 1
    assert _row(result.stdout, "Left in the folder") == 1
    state = _state(config)
    assert state[ZOE][:2] == ("bounced", "bounced")
    assert state[DAN][:2] == ("active", "sent")  # a forged token names nobody


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_the_mailbox_is_read_over_tls_and_starttls_with_a_trusted_certificate(
    cli, tmp_path, database_url, certificates
):
    with dovecot(certificates) as server:
        server.append(dsn_samples.unrelated())
        env = {"DIGEST_BOUNCES__PASSWORD": server.password}
        for security, port in (("ssl", server.tls_port), ("starttls", server.port)):
            extra = f'security = "{security}"\nca_file = "{certificates.ca}"'
            section = _bounces_section(port, server.user).replace('security = "none"\n', "")
            config = write_config(tmp_path, section + extra, database_url=database_url)
            result = cli("--config", str(config), "bounces", env=env, config=False)
            assert result.returncode == 0, result.stderr
            assert _row(result.stdout, "Left in the folder") == 1

        # Without the test CA, the system's CAs do not know the server's certificate.
        section = _bounces_section(server.tls_port, server.user)
        config = write_config(
            tmp_path, section.replace('"none"', '"ssl"'), database_url=database_url
        )
        result = cli("--config", str(config), "bounces", env=env, config=False)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "certificate this machine does not trust" in result.stderr
        assert "bounces.ca_file" in result.stderr


def test_the_scheduled_job_reads_the_mailbox_and_logs_one_line(
    config_file, imap, monkeypatch, caplog
):
    from digest.jobs import Runner

    monkeypatch.setenv("DIGEST_BOUNCES__PASSWORD", imap.password)
    imap.append(dsn_samples.without_message_id("nobody@example.com"))
    runner = Runner(load_settings(config_file))
    with caplog.at_level("INFO"):
        runner.read_bounces()
    end = [r.getMessage() for r in caplog.records if "job.end" in r.getMessage()]
    assert len(end) == 1
    assert "job=bounces" in end[0] and "read=1" in end[0] and "left=1" in end[0]

    monkeypatch.setenv("DIGEST_BOUNCES__PASSWORD", "wrong")
    caplog.clear()
    Runner(load_settings(config_file)).read_bounces()  # logs the sentence, never raises
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "refused the login" in errors[0]


@pytest.mark.parametrize(
    "capabilities",
    ["IMAP4rev1 LITERAL+ UIDPLUS", "IMAP4rev1 LITERAL+"],
    ids=["copy-uid-expunge", "copy-expunge"],
)
def test_servers_without_move_get_copy_and_expunge(cli, tmp_path, database_url, capabilities):
    with dovecot(capabilities=capabilities) as server:
        config = write_config(
            tmp_path, _bounces_section(server.port, server.user), database_url=database_url
        )
        assert cli("--config", str(config), "subscribers", "add", DAN, config=False).returncode == 0
        server.append(dsn_samples.unrelated())
        server.append(dsn_samples.without_message_id(DAN))
        env = {"DIGEST_BOUNCES__PASSWORD": server.password}
        result = cli("--config", str(config), "bounces", env=env, config=False)
        assert result.returncode == 0, result.stderr
        assert _row(result.stdout, "Moved to the processed folder") == 1
        assert server.subjects("INBOX") == ["Loved today's ferry story"]
        assert server.subjects("Processed bounces") == ["Delivery Status Notification (Failure)"]


def test_a_missing_folder_is_one_sentence(cli, tmp_path, database_url, imap, password):
    section = _bounces_section(imap.port, imap.user, 'folder = "Bounces"')
    config = write_config(tmp_path, section, database_url=database_url)
    result = cli("--config", str(config), "bounces", env=password, config=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no folder 'Bounces'" in result.stderr and "bounces.folder" in result.stderr
