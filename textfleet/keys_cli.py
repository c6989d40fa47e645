"""`textfleet keys`: create, list and revoke API keys, straight in the database.

These commands talk to `TEXTFLEET_DATABASE_URL` directly, not to the API: the first admin key cannot
come over HTTP (there is no key yet to ask with), and an operator with database access is who may mint
keys anyway. A new key's secret is printed once, on stdout alone (so `KEY=$(textfleet keys create ...)`
captures just it); only its SHA-256 hash is stored, and nothing here can show it again.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from shared.db import session_scope, utcnow
from shared.errors import InvalidInputError, KeyNotFoundError
from shared.settings import get_settings
from shared.tenancy.key_admin import KeyInfo, list_keys, parse_expiry, parse_scopes, revoke_key
from shared.tenancy.store import create_key, ensure_tenant, validate_tenant_name

__all__ = ["app"]

app = typer.Typer(
    help="API keys (straight in TEXTFLEET_DATABASE_URL): create, list, revoke.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


def _tenant(value: str) -> str:
    try:
        return validate_tenant_name(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tenant") from exc


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for (created if new).")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: jobs:read, jobs:write, admin (admin implies all).")
    ] = "jobs:read,jobs:write",
    expires: Annotated[
        str | None,
        typer.Option(help="Lifetime (90m, 12h, 30d, 2w) or an ISO 8601 time; default: never expires."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
) -> None:
    """Create a key and print its secret once (stdout); its details go to stderr."""
    now = utcnow()
    try:
        parsed_scopes = parse_scopes(scopes)
        expires_at = parse_expiry(expires, now) if expires else None
    except InvalidInputError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.field}") from exc
    if name is not None and len(name) > 200:
        raise typer.BadParameter("at most 200 characters", param_hint="--name")
    tenant = _tenant(tenant)
    with session_scope(get_settings().database_url) as session:
        ensure_tenant(session, tenant)
        key, secret = create_key(session, tenant, parsed_scopes, expires_at=expires_at, name=name)
        info = KeyInfo.of(key, now)
    err_console.print(
        f"[green]created[/] {info.id} for tenant [bold]{info.tenant}[/] "
        f"(scopes {', '.join(info.scopes)}; expires {_when(info.expires_at)})"
    )
    err_console.print("[yellow]The secret is shown this once; only its hash is stored.[/]")
    print(secret)


@app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table.")] = False,
) -> None:
    """List keys by prefix (never the secret or its hash), revoked and expired ones included."""
    now = utcnow()
    with session_scope(get_settings().database_url) as session:
        infos = [KeyInfo.of(key, now) for key in list_keys(session, tenant)]
    if as_json:
        print(json.dumps([info.model_dump(mode="json") for info in infos], indent=1))
        return
    # The prefix is the handle (`keys revoke` takes it): never wrapped; `--json` also gives the ids.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("prefix", no_wrap=True)
    for column in ("tenant", "name", "scopes", "status", "created", "expires", "last used"):
        table.add_column(column)
    colour = {"active": "green", "revoked": "red", "expired": "yellow"}
    for info in infos:
        table.add_row(
            info.prefix,
            info.tenant,
            info.name or "",
            ",".join(info.scopes),
            f"[{colour[info.status]}]{info.status}[/]",
            _when(info.created_at),
            _when(info.expires_at),
            _when(info.last_used_at),
        )
    console.print(table)


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's id (key_...) or its prefix (tfk_...).")],
) -> None:
    """Revoke a key: refused from then on (within TEXTFLEET_AUTH_CACHE_TTL_S by a running API)."""
    try:
        with session_scope(get_settings().database_url) as session:
            row, revoked_now = revoke_key(session, key, utcnow())
            info = KeyInfo.of(row, utcnow())
    except (KeyNotFoundError, InvalidInputError) as exc:
        err_console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(1) from exc
    if revoked_now:
        err_console.print(f"[green]revoked[/] {info.id} ({info.prefix}, tenant {info.tenant})")
    else:
        err_console.print(f"{info.id} ({info.prefix}) was already revoked at {_when(info.revoked_at)}")
