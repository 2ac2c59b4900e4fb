"""The exceptions a user should ever see, each as a single sentence."""


class DigestError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class InvalidInput(DigestError):
    """Something a person typed or a file held is not acceptable (callers catch by type)."""


class InvalidAddress(InvalidInput):
    """Not an email address digest can write to."""


class InvalidName(InvalidInput):
    """A name with control characters or line breaks."""
