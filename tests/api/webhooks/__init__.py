"""Tests of api/webhooks/."""
