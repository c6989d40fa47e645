"""The app's authenticator: an `Authorization: Bearer` key to the `Principal` it stands for.

A verified key (and an unknown one) is remembered for `auth_cache_ttl_s`, so a busy API reads the
`api_keys` table about once per key per TTL instead of once per request; revoking a key therefore takes
effect within that TTL on every API process. A cached key never outlives its own `expires_at`.
"""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from shared.db.models import utcnow
from shared.errors import AuthenticationError
from shared.tenancy.keys import hash_key, looks_like_key
from shared.tenancy.principal import OPEN_PRINCIPAL, Principal, Scope
from shared.tenancy.settings import AuthSettings
from shared.tenancy.store import find_active_key

__all__ = ["Authenticator"]

#: Most keys one API process remembers; past it the memory starts afresh (a flood of made-up keys
#: cannot grow it without bound).
_CACHE_MAX_KEYS = 10_000


class Authenticator:
    """Turns a bearer token into a `Principal`, or raises `AuthenticationError` (a 401)."""

    def __init__(self, settings: AuthSettings, sessions: sessionmaker[Session]) -> None:
        self.enabled = settings.auth_enabled
        self._ttl_s = settings.auth_cache_ttl_s
        self._sessions = sessions
        # key hash -> (monotonic deadline, principal or None for "no such active key")
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, token: str | None) -> Principal:
        """Who `token` (the bearer credential, or None when absent) is."""
        if not self.enabled:
            return OPEN_PRINCIPAL
        if not token:
            raise AuthenticationError("missing API key: send `Authorization: Bearer <key>`")
        if not looks_like_key(token):
            raise AuthenticationError("invalid API key")
        digest = hash_key(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal, expires_at = await run_in_threadpool(self._lookup, digest)
            self._remember(digest, principal, now, expires_at)
        if principal is None:
            raise AuthenticationError("invalid API key (unknown, revoked or expired)")
        return principal

    def _lookup(self, digest: str) -> tuple[Principal | None, datetime | None]:
        with self._sessions() as session:
            key = find_active_key(session, digest)
            if key is None:
                return None, None
            scopes = frozenset(Scope(scope) for scope in key.scopes if scope in Scope._value2member_map_)
            return Principal(tenant=key.tenant_id, scopes=scopes, key_id=key.id), key.expires_at

    def _remember(
        self, digest: str, principal: Principal | None, now: float, expires_at: datetime | None
    ) -> None:
        if self._ttl_s <= 0:
            return
        deadline = now + self._ttl_s
        if expires_at is not None:
            deadline = min(deadline, now + (expires_at - utcnow()).total_seconds())
        if len(self._cache) >= _CACHE_MAX_KEYS:
            self._cache.clear()
        self._cache[digest] = (deadline, principal)
