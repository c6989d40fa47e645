"""Settings of webhook destination safety (`TEXTFLEET_WEBHOOK_ALLOW`, `TEXTFLEET_WEBHOOK_DNS_*`).

A group of `shared.settings.Settings` (`settings.webhook_safety`), read from the same environment with
the same prefix, so each variable is `TEXTFLEET_<FIELD>`. What the allow-list entries mean:
`shared.webhooks.addresses.AllowList`; how they are applied: `shared.webhooks.policy`.

Migration: the older `TEXTFLEET_WEBHOOK_ALLOW_PRIVATE=true` still works and means "allow every
network" (cloud metadata addresses stay refused); name the hosts or networks here instead.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.privacy.secrets import SecretSources
from shared.webhooks.addresses import AllowList

__all__ = ["WebhookSafetySettings"]


class WebhookSafetySettings(SecretSources):
    """Where webhooks may go. Each field is `TEXTFLEET_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTFLEET_", env_file=".env", extra="ignore", case_sensitive=False
    )

    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Webhook destinations allowed although not public, comma-separated (or a JSON list): "
        "IP networks or addresses (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`), host names "
        "(`receiver.internal`, whatever it resolves to) and `*.domain` (every name under it). Without "
        "an entry, a webhook URL must resolve only to public addresses: loopback, private, link-local, "
        "CGNAT, unspecified, multicast, reserved and other special-purpose addresses (IPv4 and IPv6, "
        "IPv4-mapped included) are refused. Cloud metadata addresses (169.254.169.254, fd00:ec2::254, "
        "...) are refused unless an entry is that very address.",
    )
    webhook_allow_private: bool = Field(
        False,
        description="Deprecated (use `webhook_allow`): allow every destination that is not public, as if "
        "`webhook_allow` held every network; cloud metadata addresses stay refused.",
    )
    webhook_dns_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Longest wait for the DNS answers of a submission's webhook hosts (then `422`), and "
        "for one delivery attempt's lookup (then the attempt fails and is retried).",
    )
    webhook_dns_cache_s: float = Field(
        10.0,
        ge=0,
        description="How long a webhook worker reuses a host's DNS answer. Every attempt checks the "
        "addresses it connects to, cached or not, and connects to the address it checked; 0: look the "
        "host up again on every attempt.",
    )

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in (p.strip() for p in text.split(",")) if part]
        return value

    @field_validator("webhook_allow")
    @classmethod
    def _parses(cls, value: list[str]) -> list[str]:
        AllowList.parse(value)  # ValueError names the bad entry
        return value

    @property
    def allow_list(self) -> AllowList:
        """The parsed `webhook_allow` (every network with the legacy `webhook_allow_private`)."""
        allowed = AllowList.parse(self.webhook_allow)
        return allowed.with_everything() if self.webhook_allow_private else allowed
