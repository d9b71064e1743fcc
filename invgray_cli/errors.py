"""Base: errors a user can fix: the CLI prints their message on one line, never a traceback."""


class InvgrayError(Exception):
    """A user-facing failure; the message says what is wrong and what to do."""


class OutputExists(InvgrayError):
    """An output is not written because a file already has its name and overwriting was not asked for."""

    def __init__(self, path: object) -> None:
        super().__init__(f"{path} exists; use --force to overwrite it or --skip-existing to keep it")
        self.path = path

    def __reduce__(self) -> tuple[type, tuple[object]]:  # pickled (a worker process) from its path
        return OutputExists, (self.path,)
