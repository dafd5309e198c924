"""The key format: fixed length, unique, checksummed; any one-character change is caught offline."""

from __future__ import annotations

import secrets

from credentials.api_keys import keys
from portal.infra.crypto import BASE62_ALPHABET, crc32_base62

ALPHABET = BASE62_ALPHABET + "_"


def _mutate(key: str, position: int, char: str) -> str:
    return key[:position] + char + key[position + 1 :]


def test_ten_thousand_keys_are_unique_fixed_length_and_checksummed():
    generated = [keys.generate("live" if i % 2 else "test") for i in range(10_000)]
    plaintexts = [plaintext for _key_id, plaintext in generated]
    assert len(set(plaintexts)) == 10_000
    assert len({key_id for key_id, _ in generated}) == 10_000
    assert {len(p) for p in plaintexts} == {keys.KEY_LENGTH}
    for key_id, plaintext in generated:
        parsed = keys.parse(plaintext)
        assert parsed is not None and parsed.key_id == key_id
        assert plaintext.startswith(("ipk_live_", "ipk_test_"))
        assert plaintext[-6:] == crc32_base62(plaintext[:-6])
        # One random one-character change to every key fails the checksum (or the format).
        position = secrets.randbelow(len(plaintext))
        replacement = secrets.choice([c for c in ALPHABET if c != plaintext[position]])
        assert keys.parse(_mutate(plaintext, position, replacement)) is None


def test_every_one_character_change_fails_exhaustively():
    for _ in range(20):
        _key_id, plaintext = keys.generate("live")
        for position, original in enumerate(plaintext):
            for char in ALPHABET:
                if char != original:
                    assert keys.parse(_mutate(plaintext, position, char)) is None, (position, char)


def test_the_secret_part_carries_at_least_160_bits():
    import math

    assert keys.SECRET_LENGTH * math.log2(62) >= 160


def test_parse_refuses_look_alikes():
    _key_id, plaintext = keys.generate("test")
    assert keys.parse(plaintext) is not None
    for bad in [
        "",
        plaintext[:-1],
        plaintext + "0",
        plaintext.replace("ipk_", "ipx_"),
        plaintext.upper(),
        None,
        42,
    ]:
        assert keys.parse(bad) is None
    assert keys.parse(plaintext.replace("ipk_test_", "ipk_prod_")) is None
