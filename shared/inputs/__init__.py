"""What one request may weigh: the caps on request bodies and on client metadata (settings group)."""
