"""Key administration in the database (PostgreSQL and SQLite): list, find, revoke, expiry, last use;
and the parsing of `--scopes` and `--expires`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from shared.db import session_scope
from shared.db.tenant_models import ApiKey
from shared.errors import InvalidInputError, KeyNotFoundError
from shared.tenancy.key_admin import (
    KeyInfo,
    find_key,
    key_status,
    list_keys,
    parse_expiry,
    parse_scopes,
    revoke_key,
    touch_last_used,
)
from shared.tenancy.keys import hash_key
from shared.tenancy.principal import Scope
from shared.tenancy.store import create_key, ensure_tenant

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW + timedelta(minutes=90)),
        ("12h", NOW + timedelta(hours=12)),
        ("30d", NOW + timedelta(days=30)),
        (" 2w ", NOW + timedelta(weeks=2)),
        ("45s", NOW + timedelta(seconds=45)),
        ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T12:00:00+01:00", datetime(2027, 1, 31, 11, 0, tzinfo=UTC)),
        ("2027-01-31T12:00:00Z", datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_expiry_is_a_duration_or_an_iso_time(text: str, expected: datetime) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0d", "more than 0"),
        ("4000d", "at most 3650d"),
        ("30 days", "not a duration"),
        ("soon", "not a duration"),
        ("2020-01-01", "not in the future"),
        ("2026-12-02T12:00:00Z", "not in the future"),
    ],
)
def test_bad_expiry_is_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem) as caught:
        parse_expiry(text, NOW)
    assert caught.value.field == "expires"


def test_scopes_parse_and_unknown_ones_are_named() -> None:
    assert parse_scopes("jobs:read, jobs:write") == {Scope.JOBS_READ, Scope.JOBS_WRITE}
    assert parse_scopes("admin") == {Scope.ADMIN}
    with pytest.raises(InvalidInputError, match="unknown scope jobs:delete; valid scopes: jobs:write"):
        parse_scopes("jobs:read,jobs:delete")
    with pytest.raises(InvalidInputError, match="at least one scope"):
        parse_scopes(" , ")


@pytest.fixture
def db(database_url: str) -> str:
    with session_scope(database_url) as session:
        session.execute(delete(ApiKey))
    return database_url


def _create(url: str, tenant: str, **kwargs: object) -> tuple[str, str]:
    with session_scope(url) as session:
        ensure_tenant(session, tenant)
        key, secret = create_key(session, tenant, frozenset({Scope.JOBS_READ}), **kwargs)  # type: ignore[arg-type]
        return key.id, secret


def test_list_shows_prefixes_never_secrets_and_filters_by_tenant(db: str) -> None:
    first, secret = _create(db, "acme", name="ci")
    _create(db, "globex")
    with session_scope(db) as session:
        every = [KeyInfo.of(key, NOW) for key in list_keys(session)]
        acme = [KeyInfo.of(key, NOW) for key in list_keys(session, "acme")]
    assert [info.id for info in acme] == [first]
    assert {info.tenant for info in every} == {"acme", "globex"}
    shown = acme[0].model_dump_json()
    assert acme[0].prefix == secret[:12]
    assert secret not in shown and hash_key(secret) not in shown
    assert acme[0].name == "ci" and acme[0].status == "active" and acme[0].scopes == ["jobs:read"]


def test_revoke_by_id_or_prefix_once_and_unknown_keys_are_named(db: str) -> None:
    key_id, secret = _create(db, "acme")
    other_id, other_secret = _create(db, "acme")
    with session_scope(db) as session:
        key, revoked_now = revoke_key(session, secret[:12], NOW)
        assert (key.id, revoked_now, key_status(key, NOW)) == (key_id, True, "revoked")
    with session_scope(db) as session:
        key, revoked_now = revoke_key(session, key_id, NOW + timedelta(hours=1))
        assert revoked_now is False
        assert key.revoked_at == NOW  # the first revocation time stays
        assert key_status(session.get(ApiKey, other_id), NOW) == "active"  # type: ignore[arg-type]
    with session_scope(db) as session, pytest.raises(KeyNotFoundError, match="tfk_nope"):
        find_key(session, "tfk_nope")
    with session_scope(db) as session, pytest.raises(KeyNotFoundError):
        find_key(session, other_secret[:12], tenant="globex")  # another tenant's key is not found


def test_expired_keys_show_as_expired(db: str) -> None:
    key_id, _ = _create(db, "acme", expires_at=NOW + timedelta(minutes=5))
    with session_scope(db) as session:
        key = session.get(ApiKey, key_id)
        assert key is not None
        assert key_status(key, NOW) == "active"
        assert key_status(key, NOW + timedelta(minutes=5)) == "expired"


def test_last_use_is_written_at_most_once_per_period(db: str) -> None:
    key_id, _ = _create(db, "acme")
    every = timedelta(seconds=60)
    with session_scope(db) as session:
        assert touch_last_used(session, key_id, NOW, every) is True
        assert touch_last_used(session, key_id, NOW + timedelta(seconds=30), every) is False
    with session_scope(db) as session:
        assert session.get(ApiKey, key_id).last_used_at == NOW  # type: ignore[union-attr]
        assert touch_last_used(session, key_id, NOW + timedelta(seconds=61), every) is True
    with session_scope(db) as session:
        assert session.get(ApiKey, key_id).last_used_at == NOW + timedelta(seconds=61)  # type: ignore[union-attr]
