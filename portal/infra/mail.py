"""The console e-mail backend, on stderr: a command's stdout (its `--json`) stays one document."""

from __future__ import annotations

import sys

from django.core.mail.backends import console


class StderrConsoleBackend(console.EmailBackend):
    """Django's console backend (`EMAIL_URL=consolemail://`), writing to stderr, not stdout."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("stream", sys.stderr)
        super().__init__(*args, **kwargs)
