"""Tenants and API keys (issue 12): who is calling, and what they may do.

`principal` (the caller and its scopes), `keys` (key format and hashing), `store` (the `tenants` and
`api_keys` tables), `settings` (the `TEXTFLEET_AUTH_*` group). Nothing here imports the API or workers.
"""
