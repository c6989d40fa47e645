"""The bench's HTTP clients present a key of their own when the API requires one, and none when not."""

from __future__ import annotations

from pathlib import Path

from bench.loadgen import client_headers
from shared.db import session_scope
from shared.db.migrate import upgrade
from shared.settings import Settings
from shared.tenancy.keys import hash_key
from shared.tenancy.store import find_active_key


def test_a_bench_key_is_made_only_when_the_api_requires_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    upgrade(url)
    settings = Settings(database_url=url)

    def with_auth(enabled: bool) -> Settings:
        return settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"auth_enabled": enabled})}
        )

    assert client_headers(with_auth(False), url) == {}
    headers = client_headers(with_auth(True), url)
    scheme, plaintext = headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    with session_scope(url) as session:
        key = find_active_key(session, hash_key(plaintext))
        assert key is not None and key.tenant_id == "bench"
        assert sorted(key.scopes) == ["jobs:read", "jobs:write"]
