"""Tests of api/health/."""
