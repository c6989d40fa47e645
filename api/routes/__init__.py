"""HTTP routes: thin adapters between requests and `api.services`."""
