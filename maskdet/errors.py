"""The project's own errors: a problem with the user's input, files or
settings, in one line that names the file or parameter and says what to do.

The CLI prints a ``MaskdetError`` as that one line (exit status 2) and lets
anything else through with its traceback: a fault in NumPy, Keras or our own
code is a bug to report, not a message to read. Each subclass also keeps the
built-in type callers would catch (``ValueError``, ``FileNotFoundError``).
"""


class MaskdetError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong setting."""


class InputError(MaskdetError, ValueError):
    """An input or option that cannot be used (a wrong name, size, kind or file)."""


class MissingFileError(MaskdetError, FileNotFoundError):
    """A file or folder the project needs is not there; the message says which command makes it."""
