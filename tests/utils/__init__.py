"""Test helpers: real services, factories and fakes."""
