"""`/v1/keys`: list, create and revoke API keys over HTTP (admin scope only).

The first admin key comes from `textfleet keys create` (the database, directly); after that an admin key
can manage the others here. A created key's secret is in the response once and never again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import AdminDep, KeysDep
from api.keys.protocol import TENANT_PATTERN, KeyCreate, KeyCreated, KeyInfo, KeyList
from shared.schemas import ErrorResponse

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/keys",
    tags=["keys"],
    responses={
        401: {"model": ErrorResponse, "description": "no valid API key"},
        403: {"model": ErrorResponse, "description": "the key lacks the admin scope"},
    },
)


@router.get("", summary="List keys (by prefix; never their secrets)", response_model=KeyList)
def list_keys(
    _admin: AdminDep,
    keys: KeysDep,
    tenant: Annotated[
        str | None, Query(pattern=TENANT_PATTERN, description="Only this tenant's keys.")
    ] = None,
) -> KeyList:
    return KeyList(items=keys.list(tenant))


@router.post(
    "",
    status_code=201,
    summary="Create a key (its secret is shown in this response only)",
    response_model=KeyCreated,
    responses={422: {"model": ErrorResponse}},
)
def create_key(body: KeyCreate, admin: AdminDep, keys: KeysDep) -> KeyCreated:
    return keys.create(body, by=admin.key_id)


@router.delete(
    "/{key}",
    summary="Revoke a key (by id or prefix); revoking it again changes nothing",
    response_model=KeyInfo,
    responses={404: {"model": ErrorResponse, "description": "no such key"}},
)
def revoke_key(
    key: Annotated[str, Path(max_length=64, description="The key's id (`key_...`) or prefix (`tfk_...`).")],
    admin: AdminDep,
    keys: KeysDep,
) -> KeyInfo:
    info, _revoked_now = keys.revoke(key, by=admin.key_id)
    return info
