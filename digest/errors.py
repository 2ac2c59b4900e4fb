"""The one exception type a user should ever see, as a single sentence."""


class DigestError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""
