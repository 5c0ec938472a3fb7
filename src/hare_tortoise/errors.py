"""The one exception class of bad input: every check of this library raises a subclass of it, so that a caller (the
command line) can tell a user's mistake, which it reports in one line, from a bug, which it shows in full."""


class InvalidInput(ValueError):
    """An argument, setting, file or combination this library refuses; the message says what is wrong and what
    would be right. A ValueError, so that code catching ValueError keeps working."""
