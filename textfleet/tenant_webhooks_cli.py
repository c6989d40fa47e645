"""`textfleet tenants webhook-secret TENANT`: a tenant's own webhook signing secret, set directly in
the database (`TEXTFLEET_DATABASE_URL`), like the other tenant commands.

    textfleet tenants webhook-secret acme               # which secret signs acme's deliveries
    textfleet tenants webhook-secret acme --generate    # a new random secret, printed once
    textfleet tenants webhook-secret acme --stdin       # the secret read from standard input
    textfleet tenants webhook-secret acme --clear       # back to TEXTFLEET_WEBHOOK_SECRET

The secret is never taken as a command-line argument (it would sit in shell history and `ps`).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["webhook_secret"]

console = Console()
err_console = Console(stderr=True)


def webhook_secret(
    tenant: Annotated[str, typer.Argument(help="The tenant's id.")],
    generate: Annotated[
        bool, typer.Option("--generate", help="Set a new random secret and print it.")
    ] = False,
    stdin: Annotated[bool, typer.Option("--stdin", help="Set the secret read from standard input.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Sign with the global secret again.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Print the tenant's secret.")] = False,
) -> None:
    """Show, set or clear a tenant's own webhook signing secret (deliveries of its jobs and batches
    are signed with it instead of TEXTFLEET_WEBHOOK_SECRET)."""
    from shared.db import session_scope
    from shared.errors import InvalidInputError
    from shared.settings import get_settings
    from shared.webhooks import tenant_secrets

    if generate + stdin + clear > 1:
        err_console.print("[red]use one of --generate, --stdin, --clear[/]")
        raise typer.Exit(2)
    url = get_settings().database_url
    try:
        with session_scope(url) as session:
            if clear:
                had = tenant_secrets.clear_tenant_webhook_secret(session, tenant)
                console.print(
                    f"tenant {tenant}: signs with the global secret"
                    + ("" if had else " (it had no secret of its own)")
                )
                return
            if generate or stdin:
                given = sys.stdin.read() if stdin else None
                secret = tenant_secrets.set_tenant_webhook_secret(session, tenant, given)
                console.print(f"tenant {tenant}: deliveries are now signed with its own secret")
                if generate:
                    console.print(
                        "Give it to the tenant's receivers now; it is not shown again unless --show:"
                    )
                    console.print(secret, soft_wrap=True, highlight=False)
                return
            secret_or_none = tenant_secrets.tenant_webhook_secret(session, tenant)
    except (InvalidInputError, ValueError) as exc:  # a bad secret, a bad tenant name
        err_console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(1) from exc
    if secret_or_none is None:
        console.print(f"tenant {tenant}: signs with the global secret (TEXTFLEET_WEBHOOK_SECRET)")
    elif show:
        console.print(secret_or_none, soft_wrap=True, highlight=False)
    else:
        console.print(
            f"tenant {tenant}: signs with its own secret ({secret_or_none[:10]}...; --show prints it)"
        )
