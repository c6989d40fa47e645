"""Offline preparation of the default models (see `textfleet.models.prepare`)."""

from textfleet.models.prepare import prepare_all, prepare_encoder, prepare_generation_model

__all__ = ["prepare_all", "prepare_encoder", "prepare_generation_model"]
