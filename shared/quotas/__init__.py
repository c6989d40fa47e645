"""Per-tenant limits (issue 12): the request rate, unfinished jobs and generation-token budgets.

`settings` (the defaults), `tenant_limits` (a tenant's overrides on top), `budget` (the reservations
in Redis), `admission` (the one call in job creation). The request rate is enforced per request by
`api.quotas`, with the `limits` library.
"""
