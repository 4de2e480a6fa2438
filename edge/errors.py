"""The one base class of errors a user can cause and fix (bad config, missing or corrupt files,
bad arguments). The CLI prints such an error as one line, ``error: ...``, and exits 2; anything
else is a bug and keeps its traceback. Domain modules raise subclasses of ``UserError``; they
never import the CLI.
"""
from __future__ import annotations


class UserError(Exception):
    """Raised for a problem the user can fix; the message is printed as is."""
