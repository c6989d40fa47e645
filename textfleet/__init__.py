"""textfleet operator tooling: CLI, dev stack, client, model preparation and training."""
