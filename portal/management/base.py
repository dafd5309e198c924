"""The base of the project's management commands: option text is checked before any is used."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


def check_text_options(options: dict[str, Any]) -> None:
    """Refuse, as a one-line CommandError, option text no form would accept: a NUL character, or
    bytes that are not UTF-8 (the shell passes them through as lone surrogates). Either would
    otherwise reach the database or the file system and end in a traceback."""
    for name, value in options.items():
        for text in value if isinstance(value, list | tuple) else (value,):
            if not isinstance(text, str):
                continue
            flag = "--" + name.replace("_", "-")
            if "\x00" in text:
                raise CommandError(f"{flag}: contains a NUL character.")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise CommandError(f"{flag}: is not valid UTF-8 text.") from None


class PortalCommand(BaseCommand):
    """A management command whose options are checked (`check_text_options`) before it runs."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        check_text_options(options)
        check_text_options({"argument": list(args)})
        return super().execute(*args, **options)
