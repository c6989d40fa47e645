"""Tests of api/queues/."""
