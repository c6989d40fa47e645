"""`shared.webhooks.tenant_secrets`: setting, checking, reading and clearing a tenant's own webhook
signing secret (real PostgreSQL and SQLite)."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks import Webhook

from shared.db import session_scope
from shared.db.tenant_models import Tenant
from shared.errors import InvalidInputError
from shared.webhooks.tenant_secrets import (
    check_webhook_secret,
    clear_tenant_webhook_secret,
    new_webhook_secret,
    set_tenant_webhook_secret,
    tenant_webhook_secret,
    tenant_webhook_secrets,
)


def test_a_new_secret_is_a_standard_webhooks_secret() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert new_webhook_secret() != secret
    Webhook(secret)  # accepted by the signing library
    assert check_webhook_secret(f"  {secret}\n") == secret


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        ("hunter2", "starts with 'whsec_'"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes, not 5"),
    ],
)
def test_a_bad_secret_is_refused_without_repeating_it(secret: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words) as caught:
        check_webhook_secret(secret)
    assert secret not in caught.value.message


def test_set_read_and_clear(database_url: str) -> None:
    given = new_webhook_secret()
    with session_scope(database_url) as session:
        assert tenant_webhook_secret(session, "ts-new") is None
        assert clear_tenant_webhook_secret(session, "ts-new") is False
        assert set_tenant_webhook_secret(session, "ts-new", given) == given  # the tenant is created
        generated = set_tenant_webhook_secret(session, "ts-gen")
    with session_scope(database_url) as session:
        assert session.get(Tenant, "ts-new") is not None
        assert tenant_webhook_secret(session, "ts-new") == given
        assert tenant_webhook_secrets(session, ["ts-new", "ts-gen", "ts-none"]) == {
            "ts-new": given,
            "ts-gen": generated,
        }
        assert clear_tenant_webhook_secret(session, "ts-new") is True
    with session_scope(database_url) as session:
        assert tenant_webhook_secret(session, "ts-new") is None
        assert tenant_webhook_secrets(session, []) == {}
        with pytest.raises(InvalidInputError):
            set_tenant_webhook_secret(session, "ts-new", "nope")
