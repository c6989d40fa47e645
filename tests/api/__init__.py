"""Tests of the HTTP API (`api/`), on real Redis and real databases."""
