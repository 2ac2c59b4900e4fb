"""The exceptions a user should ever see, each as a single sentence.

Every one is a `DigestError`, which the CLI prints as it is; callers that must tell one
kind from another catch the subclass, never read the message.
"""


class DigestError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class ConfigError(DigestError):
    """A setting, template, key file or data folder is wrong or missing."""


class StoreError(DigestError):
    """The database cannot be opened, or is not digest's."""


class InvalidInput(DigestError):
    """Something a person typed or a file held is not acceptable."""


class InvalidAddress(InvalidInput):
    """Not an email address digest can write to."""


class InvalidName(InvalidInput):
    """A name with control characters or line breaks."""


class NotFound(DigestError):
    """The subscriber, digest or file asked for does not exist."""


class SourceError(DigestError):
    """A feed, page or article file cannot be read or is not what it should be."""


class DeliveryError(DigestError):
    """The mail server or provider refused the run as a whole (login, sender, reach)."""


def reason_of(exc: BaseException) -> str:
    """An exception in a few words: its message, or its type when it has none.

    (An OSError with no message is still true, so `exc or type(exc)` would print "()".)
    """
    return str(exc) or type(exc).__name__


class MailboxError(DigestError):
    """The bounce mailbox cannot be reached, refuses the login, or lacks a folder."""
