"""`/v1/files`: OpenAI-compatible file uploads (batch input) and downloads (batch output)."""
