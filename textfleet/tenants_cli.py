"""`textfleet tenants limits show|set|clear`: a tenant's limits (issue 12), read and written in the
database directly (`tenants.limits`, `shared.quotas.tenant_limits`), like `textfleet keys`.

A limit set here replaces the default (`TEXTFLEET_QUOTA_*`) for that tenant; `none` makes it
unlimited for the tenant; `clear` gives it the default again. API processes see a change within
`TEXTFLEET_QUOTA_OVERRIDES_CACHE_S` seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shared.quotas.settings import LIMIT_NAMES

__all__ = ["app", "parse_assignments"]

app = typer.Typer(help="Tenants: their limits.", no_args_is_help=True)
limits_app = typer.Typer(help="A tenant's limits (defaults: TEXTFLEET_QUOTA_*).", no_args_is_help=True)
app.add_typer(limits_app, name="limits")
console = Console()

TenantArg = Annotated[str, typer.Argument(help="The tenant's id.")]
_UNLIMITED = {"none", "null", "unlimited"}


def parse_assignments(assignments: list[str]) -> dict[str, int | None]:
    """`NAME=VALUE` pairs as overrides: VALUE a positive integer, or none/unlimited."""
    out: dict[str, int | None] = {}
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in LIMIT_NAMES:
            raise typer.BadParameter(f"{assignment!r}: give NAME=VALUE, NAME one of {', '.join(LIMIT_NAMES)}")
        raw = raw.strip().lower()
        if raw in _UNLIMITED:
            out[name] = None
            continue
        try:
            value = int(raw)
        except ValueError:
            raise typer.BadParameter(f"{name}: {raw!r} is not an integer (or none)") from None
        if value <= 0:
            raise typer.BadParameter(f"{name}: must be positive (or none for unlimited)")
        out[name] = value
    return out


def _report(tenant: str, overrides: dict[str, int | None], as_json: bool) -> None:
    from shared.db import session_scope
    from shared.queueing import redis_client
    from shared.quotas.budget import usage
    from shared.quotas.record import recorded_tokens
    from shared.quotas.tenant_limits import effective
    from shared.settings import get_settings

    settings = get_settings()
    limits = effective(settings.quotas, tenant, overrides)
    now = datetime.now(UTC)
    with session_scope(settings.database_url) as session:
        today = recorded_tokens(session, tenant, now.replace(hour=0, minute=0, second=0, microsecond=0))
    try:
        live: dict[str, Any] = vars(usage(redis_client(settings.redis_url), tenant))
    except Exception as exc:  # the record still answers
        live = {"error": str(exc)}
    out = {
        "tenant": tenant,
        "limits": {name: getattr(limits, name) for name in LIMIT_NAMES},
        "overridden": sorted(overrides),
        "live": live,
        "recorded_tokens_today": today,
    }
    if as_json:
        typer.echo(json.dumps(out))
        return
    table = Table(title=f"limits of tenant {tenant}")
    for column in ("limit", "value", "from"):
        table.add_column(column)
    for name in LIMIT_NAMES:
        value = getattr(limits, name)
        source = "tenant" if name in overrides else "default"
        table.add_row(name, "unlimited" if value is None else str(value), source)
    console.print(table)
    console.print(f"live (Redis): {live}")
    console.print(f"recorded today (database): {today} tokens")


def _edit(tenant: str, change: Any) -> dict[str, int | None]:
    from shared.db import session_scope
    from shared.errors import InvalidInputError
    from shared.settings import get_settings

    with session_scope(get_settings().database_url) as session:
        try:
            result: dict[str, int | None] = change(session)
        except InvalidInputError as exc:
            raise typer.BadParameter(exc.message) from None
    return result


@limits_app.command("show")
def show(tenant: TenantArg, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The limits in force for TENANT, where each comes from, and what it holds now."""
    from shared.quotas.tenant_limits import read_overrides

    _report(tenant, _edit(tenant, lambda session: read_overrides(session, tenant)), as_json)


@limits_app.command("set")
def set_limits(
    tenant: TenantArg,
    assignments: Annotated[list[str], typer.Argument(help="NAME=VALUE, e.g. tokens_per_day=100000.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Override limits of TENANT: NAME=VALUE (a positive integer, or none for unlimited)."""
    from shared.quotas.tenant_limits import set_overrides

    values = parse_assignments(assignments)
    _report(tenant, _edit(tenant, lambda session: set_overrides(session, tenant, values)), as_json)


@limits_app.command("clear")
def clear(
    tenant: TenantArg,
    names: Annotated[list[str] | None, typer.Argument(help="Limits to reset (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Give TENANT the default of the named limits again (all of them when none are named)."""
    from shared.quotas.tenant_limits import clear_overrides

    wanted = [name.replace("-", "_") for name in names or []]
    _report(tenant, _edit(tenant, lambda session: clear_overrides(session, tenant, wanted or None)), as_json)
