"""Generation engines. Importing this package is cheap: vLLM loads only when an engine starts."""

from workers.engines.base import GenerationEngine, GenerationOutput, GenerationRequest
from workers.engines.vllm_engine import VLLMEngine

__all__ = ["GenerationEngine", "GenerationOutput", "GenerationRequest", "VLLMEngine"]
