"""Offline preparation of the default models: `prepare` (generation model, encoder; every prepared
directory is written by `prepare.prepare_dir`) and `heads` (the shipped classifier heads)."""

from textfleet.models.prepare import prepare_all, prepare_encoder, prepare_generation_model

__all__ = ["prepare_all", "prepare_encoder", "prepare_generation_model"]
