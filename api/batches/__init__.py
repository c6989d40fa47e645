"""`/v1/batches`: OpenAI's Batch API, run durably by the fleet (each request is a job)."""
