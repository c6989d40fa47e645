"""Request-independent logic of the API (what a route does, without HTTP)."""
