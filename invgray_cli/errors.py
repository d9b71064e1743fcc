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


# What torch says when memory runs out (besides its OutOfMemoryError): CPU allocations, and oneDNN,
# whose convolution cannot set itself up without memory (seen under `ulimit -v`)
OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "could not create a primitive")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the machine (or GPU) running out of memory, told without importing torch."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(words in text for words in OUT_OF_MEMORY_WORDS)
