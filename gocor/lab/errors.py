"""The one error type for wrong use of the kit."""
from __future__ import annotations


class UserError(ValueError):
    """Something the user gave (an argument, a file) cannot be used; the message names it and
    says what to do. The command line prints it and exits with status 2; other exceptions are
    bugs and keep their traceback."""
