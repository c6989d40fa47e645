"""Raw request bodies no API may store: NUL, lone surrogates, NaN and Infinity in every place a
client can put them, each carrying a marker so a test can look for it wherever the API wrote.

They are raw JSON bytes (an escape such as `\\udfff` or a literal `NaN` cannot be produced by a
well-behaved JSON encoder), with the field each 422 must name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Poison:
    name: str
    path: str  # the route under /v1/jobs
    body: bytes
    field: str  # what the 422 must name


def _job(task: str, input_: str, extra: str = "") -> str:
    return f'{{"task": "{task}", "input": {input_}{extra}}}'


def poisons(marker: str) -> list[Poison]:
    """Every poisoned submission, each holding `marker` (ASCII) in the offending value or beside it."""
    text = f'{{"text": "{marker}"}}'
    cases: list[tuple[str, str, str]] = [
        ("NUL in text", _job("sentiment", f'{{"text": "{marker}\\u0000"}}'), "input.text"),
        ("lone low surrogate in text", _job("moderate", f'{{"text": "{marker}\\udfff"}}'), "input.text"),
        ("lone high surrogate in text", _job("summarize", f'{{"text": "\\ud800{marker}"}}'), "input.text"),
        ("NUL in prompt", _job("generate", f'{{"prompt": "{marker}\\u0000"}}'), "input.prompt"),
        (
            "surrogate in a chat message",
            _job("generate", f'{{"messages": [{{"role": "user", "content": "{marker}\\udc00"}}]}}'),
            "input.messages.0.content",
        ),
        ("NUL in metadata", _job("risk", text, f', "metadata": {{"k": "{marker}\\u0000"}}'), "metadata.k"),
        (
            "surrogate in metadata",
            _job("risk", text, f', "metadata": {{"k": "{marker}\\udfff"}}'),
            "metadata.k",
        ),
        (
            "NUL deep in metadata",
            _job("risk", text, f', "metadata": {{"k": ["{marker}", {{"x": "\\u0000{marker}"}}]}}'),
            "metadata.k.1.x",
        ),
        (
            "NUL in a metadata key",
            _job("risk", text, f', "metadata": {{"{marker}\\u0000": 1}}'),
            "metadata[key]",
        ),
        (
            "surrogate in a metadata key",
            _job("risk", text, f', "metadata": {{"\\udfff{marker}": 1}}'),
            "metadata[key]",
        ),
        ("NaN in metadata", _job("sentiment", text, ', "metadata": {"n": NaN}'), "metadata.n"),
        ("Infinity in metadata", _job("sentiment", text, ', "metadata": {"n": Infinity}'), "metadata.n"),
        (
            "-Infinity in metadata",
            _job("sentiment", text, ', "metadata": {"n": [-Infinity]}'),
            "metadata.n.0",
        ),
        ("overflowing number", _job("sentiment", text, ', "metadata": {"n": 1e999}'), "metadata.n"),
        (
            "NaN temperature",
            _job("generate", '{"prompt": "hi"}', ', "params": {"temperature": NaN}'),
            "params.temperature",
        ),
        (
            "Infinity timeout",
            _job("sentiment", text, ', "params": {"timeout_s": Infinity}'),
            "params.timeout_s",
        ),
        (
            "NUL in stop",
            _job("generate", '{"prompt": "hi"}', f', "params": {{"stop": ["{marker}\\u0000"]}}'),
            "params.stop.0",
        ),
        (
            "NUL in webhook",
            _job("sentiment", text, f', "webhook": "https://example.com/{marker}\\u0000"'),
            "webhook",
        ),
        (
            "credentials in webhook",
            _job("sentiment", text, f', "webhook": "https://{marker}:{marker}@example.com/hook"'),
            "webhook",
        ),
        ("unknown task", _job(marker, text), "task"),
        ("surrogate task", _job(f"{marker}\\udfff", text), "task"),
    ]
    out = [Poison(name, "", body.encode(), field) for name, body, field in cases]
    good = json.dumps({"task": "sentiment", "input": {"text": "a good neighbour"}})
    bad = _job("sentiment", f'{{"text": "{marker}"}}', f', "metadata": {{"k": "\\u0000{marker}"}}')
    out.append(
        Poison("batch item", "/batch", f'{{"jobs": [{good}, {good}, {bad}]}}'.encode(), "jobs.2.metadata.k")
    )
    return out
