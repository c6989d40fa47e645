"""Authentication of `/v1` requests: API keys to principals (`service`), and the dependencies routes use."""
