"""Key administration over HTTP: the same operations as `textfleet keys`, for an admin key."""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session, sessionmaker

from api.auth.service import Authenticator
from api.keys.protocol import KeyCreate, KeyCreated, KeyInfo
from shared.db import utcnow
from shared.errors import InvalidInputError
from shared.tenancy.key_admin import list_keys, revoke_key
from shared.tenancy.store import create_key, ensure_tenant

__all__ = ["KeysService"]

log = structlog.get_logger(__name__)


class KeysService:
    """List, create and revoke keys in the app's database (built once per app)."""

    def __init__(self, sessions: sessionmaker[Session], authenticator: Authenticator) -> None:
        self._sessions = sessions
        self._authenticator = authenticator

    def list(self, tenant: str | None) -> list[KeyInfo]:
        now = utcnow()
        with self._sessions() as session:
            return [KeyInfo.of(key, now) for key in list_keys(session, tenant)]

    def create(self, body: KeyCreate, *, by: str | None) -> KeyCreated:
        now = utcnow()
        if body.expires_at is not None and body.expires_at <= now:
            raise InvalidInputError("the expiry time is not in the future", field="expires_at")
        with self._sessions.begin() as session:
            ensure_tenant(session, body.tenant)
            key, secret = create_key(
                session, body.tenant, frozenset(body.scopes), expires_at=body.expires_at, name=body.name
            )
            created = KeyCreated(**KeyInfo.of(key, now).model_dump(), key=secret)
        log.info("keys.created", key_id=created.id, tenant=created.tenant, scopes=created.scopes, by=by)
        return created

    def revoke(self, ref: str, *, by: str | None) -> tuple[KeyInfo, bool]:
        with self._sessions.begin() as session:
            key, revoked_now = revoke_key(session, ref, utcnow())
            info = KeyInfo.of(key, utcnow())
        self._authenticator.forget(info.id)  # this process refuses it at once; others within the TTL
        if revoked_now:
            log.info("keys.revoked", key_id=info.id, tenant=info.tenant, by=by)
        return info, revoked_now
