"""Errors a user can fix: the CLI prints their message on one line, never a traceback."""


class InvgrayError(Exception):
    """A user-facing failure; the message says what is wrong and what to do."""
