"""Privacy: what is kept of a job and for how long (retention, erasure) and where secrets come from."""
