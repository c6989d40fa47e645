"""Offline preparation of the default models (see `workers.models.prepare`)."""

from workers.models.prepare import prepare_all, prepare_encoder, prepare_generation_model

__all__ = ["prepare_all", "prepare_encoder", "prepare_generation_model"]
