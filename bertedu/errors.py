"""The one base class for mistakes a user can fix.

Everything the course raises because of *input* (a missing file, a damaged archive, a bad
argument, a config with the wrong types) derives from :class:`UserError`. Its message says
what is wrong and what to do. The command line prints such an error as one line and exits
with status 2; any other exception is a bug in the course and keeps its traceback.

``UserError`` subclasses ``ValueError`` so that code (and tests) written against the
built-in exception keep working.
"""
from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input, files or arguments; the message says how to fix it."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named (or the course needs) is not there."""
