"""The format of API keys: random, shown once, stored only as a hash.

A key is `tfk_` followed by 40 URL-safe random characters (240 bits). Its first 12 characters are its
*prefix*, stored in clear so an operator can tell keys apart in listings; the database holds only the
SHA-256 of the whole key. A slow password hash (argon2, bcrypt) buys nothing for a secret with 240 bits
of entropy and would cost every request milliseconds, so a plain digest is the right tool here.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import NamedTuple

__all__ = ["KEY_PREFIX", "PREFIX_CHARS", "NewKey", "generate_key", "hash_key", "looks_like_key"]

#: What every textfleet API key starts with (so secret scanners can find leaked ones).
KEY_PREFIX = "tfk_"
#: How many leading characters of a key are stored in clear and listed.
PREFIX_CHARS = 12
_RANDOM_BYTES = 30  # -> 40 URL-safe characters
_KEY_LENGTH = len(KEY_PREFIX) + 40


class NewKey(NamedTuple):
    """A freshly generated key: the plaintext (show it once), its listed prefix and its stored hash."""

    plaintext: str
    prefix: str
    secret_hash: str


def hash_key(plaintext: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def generate_key() -> NewKey:
    """A new random key."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    return NewKey(plaintext, plaintext[:PREFIX_CHARS], hash_key(plaintext))


def looks_like_key(token: str) -> bool:
    """Whether `token` has a key's shape (a cheap check before any lookup)."""
    return len(token) == _KEY_LENGTH and token.startswith(KEY_PREFIX) and token.isascii()
