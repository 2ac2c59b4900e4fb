"""Bounce messages as mail servers send them, written for these tests in their shapes.

Each function takes what a real report would carry of our message (the recipient, our
Message-ID) and returns the bytes that arrive in the bounce mailbox.
"""

from __future__ import annotations

SENDER = "digest@example.org"


def _crlf(text: str) -> bytes:
    return text.lstrip("\n").replace("\n", "\r\n").encode()


def postfix_hard(
    recipient: str, message_id: str, report_id: str = "<20261201.A1@mx.example.net>"
) -> bytes:
    """Postfix's RFC 3464 report for an unknown user (5.1.1), with our headers returned."""
    return _crlf(f"""
Return-Path: <>
Received: by mx.example.net (Postfix) id 4Qb2; Tue,  1 Dec 2026 07:00:05 +0000 (UTC)
Date: Tue,  1 Dec 2026 07:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {SENDER}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Qb2.1764572405/mx.example.net"
Content-Transfer-Encoding: 8bit
Message-Id: {report_id}

This is a MIME-encapsulated message.

--4Qb2.1764572405/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<{recipient}>: host in.example.com[192.0.2.25] said: 550 5.1.1
    <{recipient}>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--4Qb2.1764572405/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4Qb2
X-Postfix-Sender: rfc822; {SENDER}
Arrival-Date: Tue,  1 Dec 2026 07:00:01 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; in.example.com
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:
    User unknown in virtual mailbox table

--4Qb2.1764572405/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

From: Test Digest <{SENDER}>
To: {recipient}
Subject: Test Digest - 1 December 2026
Message-ID: {message_id}
Date: Tue, 01 Dec 2026 07:00:00 +0000

--4Qb2.1764572405/mx.example.net--
""")


def mailbox_full(recipient: str, message_id: str) -> bytes:
    """A report of a full mailbox (4.2.2) after the queue gave up, with the whole message."""
    return _crlf(f"""
From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>
To: {SENDER}
Subject: Returned mail: see transcript for details
Date: Sat, 5 Dec 2026 07:10:00 +0000
Message-ID: <202612050710.B2@relay.example.net>
Auto-Submitted: auto-generated (failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B2/relay"

--B2/relay
Content-Type: text/plain; charset=utf-8

The original message was received at Tue, 1 Dec 2026 07:00:02 +0000
from localhost [127.0.0.1]. It could not be delivered for 4 days:
the recipient's mailbox is full.

--B2/relay
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.net
Received-From-MTA: DNS; localhost

Final-Recipient: RFC822; {recipient}
Action: failed
Status: 4.2.2
Remote-MTA: DNS; mx.example.com
Diagnostic-Code: SMTP; 452 4.2.2 Mailbox full
Last-Attempt-Date: Sat, 5 Dec 2026 07:09:58 +0000

--B2/relay
Content-Type: message/rfc822

From: Test Digest <{SENDER}>
To: {recipient}
Subject: Test Digest - 1 December 2026
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Today's stories.

--B2/relay--
""")


def exim_failure(recipient: str, message_id: str) -> bytes:
    """Exim's plain-text report, without a delivery-status part, quoting our headers."""
    return _crlf(f"""
Return-path: <>
From: Mail Delivery System <Mailer-Daemon@smtp.example.net>
To: {SENDER}
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1vQ-000C3-Ex@smtp.example.net>
Date: Tue, 01 Dec 2026 07:00:09 +0000
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    host mx.example.com [192.0.2.30]
    SMTP error from remote mail server after RCPT TO:<{recipient}>:
    550 5.1.1 No such user here

------ This is a copy of the message, including all the headers. ------

Return-path: <{SENDER}>
From: Test Digest <{SENDER}>
To: {recipient}
Subject: Test Digest - 1 December 2026
Message-ID: {message_id}
Date: Tue, 01 Dec 2026 07:00:00 +0000

Today's stories.
""")


def without_message_id(recipient: str, delivered_to: str = SENDER) -> bytes:
    """An RFC 3464 report that returns none of our message: only the address names us."""
    return _crlf(f"""
Delivered-To: {delivered_to}
From: postmaster@mail.example.com
To: {delivered_to}
Subject: Delivery Status Notification (Failure)
Date: Tue, 1 Dec 2026 07:01:00 +0000
Message-ID: <dsn.C3@mail.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="C3"

--C3
Content-Type: text/plain

Delivery to the following recipient failed permanently:

     {recipient}

--C3
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.com

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.2.1
Diagnostic-Code: smtp; 550 5.2.1 The email account that you tried to reach is disabled

--C3--
""")


def unrelated() -> bytes:
    """A person writing to the bounce address: not a bounce."""
    return _crlf(f"""
From: Ana Reader <ana.reader@example.com>
To: {SENDER}
Subject: Loved today's ferry story
Date: Tue, 1 Dec 2026 09:15:00 +0000
Message-ID: <note.D4@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Thanks for the digest; the harbor story was the best thing I read today.
""")


def malformed() -> bytes:
    """A broken report: a multipart without its boundary, a status part of garbage."""
    return _crlf("""
From: MAILER-DAEMON@broken.example.net
Subject: Undelivered Mail
Message-ID: <broken.E5@broken.example.net>
Content-Type: multipart/report; report-type=delivery-status

--missing
Content-Type: message/delivery-status

\x00\x01 Final-Recipient: ;;;; <>>
Action: failed
""")


def unsubscribe_request(sender: str, authentication: str = "dmarc=pass") -> bytes:
    """What a mail program's "unsubscribe" button sends to the List-Unsubscribe mailto."""
    return _crlf(f"""
Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.org; {authentication}
From: {sender}
To: {SENDER}
Subject: unsubscribe
Date: Tue, 1 Dec 2026 09:20:00 +0000
Message-ID: <unsub.{abs(hash(sender))}@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

This message was sent automatically to unsubscribe.
""")
