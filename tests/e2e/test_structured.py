"""Structured output end to end: 120 jobs over 16 random schemas (plus the default one), regexes and
choices, each with its own text and sampling, submitted in bulk to the real stack (vLLM + xgrammar on
SmolLM2-135M); every result must validate, checked here again with jsonschema / re independently of the
worker's own check.

Schemas are bounded (maxLength, maxItems, integer ranges, enums) so that any output the grammar allows
fits in the jobs' small max_tokens: a cut-off output would be a failure, not an excuse.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from shared.constraints import parse_json_output
from shared.schemas import JobOut
from shared.structured import default_extract_schema

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

#: Jobs per stack (the stack runs once per database: PostgreSQL, then SQLite).
JOBS = 120
#: Distinct random schemas the extract and json_schema jobs share. Each new schema is a grammar xgrammar
#: compiles in the engine, one at a time: 0.2-3 s on an AVX-512 machine, 5-10 s on an AVX2-only one, where
#: one schema per job (~130) could not finish in any reasonable time. Every job still gets its own text,
#: sampling and seed.
SCHEMAS = 16
#: Each job's time limit: on a slow CPU a 1,024-token default extraction behind a hundred jobs takes minutes.
JOB_TIMEOUT_S = 600
#: The test fails when no job has ended for this long (more than a job's own time limit).
STALL_S = JOB_TIMEOUT_S + 30

FIRST = ["Ada", "Alan", "Grace", "Linus", "Marie", "Nikola", "Rosa", "Tim"]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Curie", "Tesla", "Parks", "Cook"]
ORGS = ["Apple", "the BBC", "Siemens", "NASA", "Oxfam", "Toyota"]
CITIES = ["Paris", "London", "Tokyo", "Lagos", "Lima", "Oslo"]
THINGS = ["bikes", "laptops", "apples", "tickets", "chairs"]


def _text(rng: random.Random) -> str:
    first, last, org, city = rng.choice(FIRST), rng.choice(LAST), rng.choice(ORGS), rng.choice(CITIES)
    templates = [
        f"{first} {last}, aged {rng.randint(20, 80)}, joined {org} in {city} in {rng.randint(1950, 2024)}.",
        f"{org} bought {rng.randint(2, 9)} {rng.choice(THINGS)} for {first} {last} in {city}.",
        f"In {city}, {first} {last} met the head of {org}. The meeting went {rng.choice(['well', 'badly'])}.",
        f"Order from {first} {last}: {rng.randint(1, 9)} {rng.choice(THINGS)}, ship to {city}.",
    ]
    return rng.choice(templates)


def _string(rng: random.Random) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": rng.choice([6, 10, 14])}


def _integer(rng: random.Random) -> dict[str, Any]:
    low = rng.choice([0, 1, 1900])
    return {"type": "integer", "minimum": low, "maximum": low + rng.choice([9, 99, 130])}


def _enum(rng: random.Random) -> dict[str, Any]:
    return {"enum": rng.sample(["positive", "negative", "neutral", "mixed", "unknown"], rng.randint(2, 5))}


def _leaf(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["string", "integer", "enum", "boolean", "nullable"])
    if kind == "string":
        return _string(rng)
    if kind == "integer":
        return _integer(rng)
    if kind == "enum":
        return _enum(rng)
    if kind == "boolean":
        return {"type": "boolean"}
    return {"anyOf": [_integer(rng), {"type": "null"}]}


def _object(rng: random.Random, names: list[str], depth: int) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in rng.sample(names, rng.randint(1, 3)):
        roll = rng.random()
        if depth > 0 and roll < 0.25:
            props[name] = _object(rng, ["street", "zip", "label", "code"], depth - 1)
        elif depth > 0 and roll < 0.45:
            item = _leaf(rng) if rng.random() < 0.5 else _object(rng, ["id", "tag", "kind"], 0)
            props[name] = {"type": "array", "items": item, "minItems": rng.choice([0, 1]), "maxItems": 2}
        else:
            props[name] = _leaf(rng)
    required = [n for n in props if rng.random() < 0.7]  # the rest are optional
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if rng.random() < 0.5:
        schema["additionalProperties"] = False
    return schema


def _case(i: int, rng: random.Random, schemas: list[dict[str, Any]]) -> tuple[dict[str, Any], str, Any]:
    """(job body, kind, what its output must satisfy) for case i."""
    text = _text(rng)
    sampling = {"temperature": rng.choice([0.0, 0.7, 1.0]), "seed": i, "timeout_s": JOB_TIMEOUT_S}
    kind = ["extract", "extract", "extract", "json_schema", "regex", "choice"][i % 6]
    if i % 50 == 0:
        kind = "default"
    if kind == "default":
        params = {"max_tokens": 1024, **sampling}
        return {"task": "extract", "input": {"text": text}, "params": params}, kind, default_extract_schema()
    if kind in ("extract", "json_schema"):
        schema = schemas[i % len(schemas)]
        if kind == "extract":
            params = {"schema": schema, "max_tokens": 256, **sampling}
            return {"task": "extract", "input": {"text": text}, "params": params}, kind, schema
        fmt = {"type": "json_schema", "json_schema": {"name": f"case_{i}", "schema": schema}}
        params = {"response_format": fmt, "max_tokens": 256, **sampling}
        prompt = f"{text}\nThe same as JSON:"
        return {"task": "generate", "input": {"prompt": prompt}, "params": params}, kind, schema
    if kind == "regex":
        regex = rng.choice(
            [r"[A-Z]{3}-[0-9]{4}", r"(yes|no)", r"[0-9]{1,3}", r"[a-z]{2,8}@example\.com", r"#[0-9a-f]{6}"]
        )
        params = {"response_format": {"type": "regex", "regex": regex}, "max_tokens": 32, **sampling}
        return {"task": "generate", "input": {"prompt": f"{text}\nCode:"}, "params": params}, kind, regex
    choices = rng.sample(
        ["yes", "no", "maybe", "Paris", "London", "positive", "negative", "42"], rng.randint(2, 5)
    )
    params = {"response_format": {"type": "choice", "choice": choices}, "max_tokens": 16, **sampling}
    return {"task": "generate", "input": {"prompt": f"{text}\nAnswer:"}, "params": params}, kind, choices


def _valid(kind: str, expected: Any, result: dict[str, Any]) -> str | None:
    """Why a succeeded job's result breaks its constraint (None when it holds)."""
    if kind in ("extract", "default"):
        data = result["data"]
    elif kind == "json_schema":
        data = parse_json_output(result["text"])
    elif kind == "regex":
        return None if re.fullmatch(expected, result["text"]) else f"{result['text']!r} !~ {expected}"
    else:
        return None if result["text"] in expected else f"{result['text']!r} not in {expected}"
    errors = list(Draft202012Validator(expected).iter_errors(data))
    return None if not errors else f"{data!r}: {errors[0].message}"


def _ended(client: httpx.Client, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Those of (the first 50 of) `job_ids` that have ended, by id."""
    out: dict[str, dict[str, Any]] = {}
    for job_id in job_ids[:50]:  # the oldest waiting first; a later call reads the rest
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            out[job_id] = JobOut.model_validate(job).model_dump(mode="json")
    return out


def test_hundreds_of_structured_jobs_all_validate(client: httpx.Client) -> None:
    rng = random.Random(14)
    fields = ["name", "age", "city", "items", "address", "mood", "note", "count"]
    schemas = [_object(rng, fields, depth=1) for _ in range(SCHEMAS)]
    cases = [_case(i, rng, schemas) for i in range(JOBS)]
    assert {kind for _, kind, _ in cases} == {"default", "extract", "json_schema", "regex", "choice"}

    started = time.monotonic()
    response = client.post("/v1/jobs/batch", json={"jobs": [body for body, _, _ in cases]})
    assert response.status_code == 202, response.text[:500]
    ids = [item["id"] for item in response.json()["items"]]

    jobs: dict[str, dict[str, Any]] = {}
    last_progress = time.monotonic()
    while len(jobs) < len(ids):
        ended = _ended(client, [job_id for job_id in ids if job_id not in jobs])
        if ended:
            jobs.update(ended)
            last_progress = time.monotonic()
        stalled = time.monotonic() - last_progress
        assert stalled < STALL_S, f"{len(jobs)}/{len(ids)} jobs ended, then none for {stalled:.0f}s"
        if not ended:
            time.sleep(2)
    elapsed = time.monotonic() - started

    problems = []
    for job_id, (body, kind, expected) in zip(ids, cases, strict=True):
        job = jobs[job_id]
        if job["status"] != "succeeded":
            problems.append(f"{kind} {job_id}: {job['status']} {job['error']} for {body['params']}")
            continue
        problem = _valid(kind, expected, job["result"])
        if problem is not None:
            problems.append(f"{kind} {job_id}: {problem}")
        assert job["usage"]["completion_tokens"] > 0
    tokens = sum(job["usage"]["completion_tokens"] for job in jobs.values())
    rate = tokens / elapsed
    print(f"\n{len(ids)} structured jobs in {elapsed:.1f}s, {tokens} completion tokens, {rate:.0f} tok/s")
    assert problems == [], f"{len(problems)} of {len(ids)} invalid:\n" + "\n".join(problems[:20])
