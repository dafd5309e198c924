"""A credential's name: refused when it holds characters that hide or reorder the text people read.

A name is shown in the inventory, the approvals queue, the audit log and e-mails, where a reviewer
decides on what it says. A right-to-left override makes `invoice<U+202E>gpj.exe` read as
"invoiceexe.jpg"; a zero-width space makes two names look the same. So a name may not hold:

- control characters (Unicode category Cc: NUL, tab, newline, DEL, the C1 controls);
- the bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069);
- the invisible U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER and U+FEFF ZERO WIDTH NO-BREAK SPACE.

The joiners U+200C/U+200D (emoji sequences, Persian and Indic scripts need them) and the marks
U+200E/U+200F (they only settle the direction of neutral characters next to them) stay allowed.
Invitation e-mails are stricter (every format character, `canonical_invitation_email`): an
address has no use for any of them.
"""

from __future__ import annotations

import unicodedata

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

#: The bidirectional controls and invisible characters refused beside every control character.
HIDING_CHARACTERS = frozenset(
    [*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\u200b", "\u2060", "\ufeff"]
)

INVALID_CHARACTERS_CODE = "invalid_characters"


def _hides_text(char: str) -> bool:
    return char in HIDING_CHARACTERS or unicodedata.category(char) == "Cc"


def validate_credential_name(value: str) -> None:
    """Check that a name holds no character that hides or reorders text; name each one refused."""
    refused = sorted({char for char in str(value) if _hides_text(char)})
    if refused:
        # Control characters have no Unicode name (unicodedata.name raises): said as what they are.
        names = ", ".join(
            f"U+{ord(char):04X} {unicodedata.name(char, 'CONTROL CHARACTER')}" for char in refused
        )
        raise ValidationError(
            _("A name cannot hold invisible or control characters (%(characters)s); type it without them."),
            code=INVALID_CHARACTERS_CODE,
            params={"characters": names},
        )


class CredentialNameField(forms.CharField):
    """A dashboard form's credential name (`validate_credential_name`)."""

    default_validators = [validate_credential_name]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # A NUL is one of the control characters refused above: one message, naming it, not two.
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]


class CredentialNameSerializerField(serializers.CharField):
    """A REST credential name (`validate_credential_name`): a 400 under `name`, code `invalid_characters`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # As in CredentialNameField (DRF adds Django's NUL check too): one message for a NUL, not two.
        self.validators = [
            *(v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)),
            validate_credential_name,
        ]
