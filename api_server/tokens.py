"""API key secrets: how a new one is made and how it is stored (its SHA-256, never the token).

Apart from `api_server.auth` so that the key command (`python -m api_server.keys`) does not
import the web framework: it starts in a third of the time.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "qtq_"


def new_token() -> str:
    """A new key's secret: a recognisable prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
