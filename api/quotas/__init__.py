"""Per-tenant limits in the API: the request rate (`service`, `dependencies`) and the quotas in force
for admission (`middleware`; the reservations themselves are `shared.quotas`)."""
