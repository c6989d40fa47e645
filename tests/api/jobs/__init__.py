"""Tests of api/jobs/."""
