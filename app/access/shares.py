"""Dashboard share tokens: a read-only link to one site's dashboard (`flask site share`).

A site has at most one token; making a new one, or `flask site unshare`, revokes the last at
once, since every request with a token reads the site's stored hash again (a read by `_id`).
Like keys, a token is 256 random bits stored only as its SHA-256 (app/access/keys.py says why).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from pymongo.database import Database

from app.access.keys import KEY_BYTES, hash_key
from app.store import sites

SHARE_PREFIX = "sh_"


def share(db: Database[Any], site_id: str) -> str | None:
    """A new share token of `site_id`, revoking the one before; None if the site is not
    registered."""
    token = SHARE_PREFIX + secrets.token_urlsafe(KEY_BYTES)
    return token if sites.set_share_hash(db, site_id, hash_key(token)) else None


def unshare(db: Database[Any], site_id: str) -> bool:
    """Revoke the site's share token; False if the site is not registered."""
    return sites.set_share_hash(db, site_id, None)


def is_shared_with(db: Database[Any], site_id: str, token: str) -> bool:
    """Whether `token` is the site's share token now."""
    stored = sites.share_hash(db, site_id)
    return stored is not None and hmac.compare_digest(stored, hash_key(token))
