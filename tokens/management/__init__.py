"""Management commands of the tokens app, and what they share."""

from django.core.management.base import CommandError


def read_option_file(path: str) -> str:
    """Return the text of a file named on the command line; an unreadable file is a CommandError."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read {path!r}: {exc}") from None
