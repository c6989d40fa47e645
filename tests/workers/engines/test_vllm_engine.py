"""The vLLM engine, for real: one AsyncLLM started for the whole module (about 30-60 s on CPU)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.constraints import OutputConstraint, output_problem, parse_json_output
from shared.errors import EngineError, InvalidInputError, ModelNotPreparedError
from shared.schemas import GenerateParams
from shared.settings import Settings
from textfleet.models.prepare import prepare_generation_model
from workers.engines import GenerationEngine, GenerationOutput, GenerationRequest, VLLMEngine

MAX_MODEL_LEN = 512

pytestmark = [
    # Starting vLLM imports torch._inductor, whose torch.utils.mkldnn uses the deprecated
    # torch.jit.script_method (torch's own code, not ours).
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def engine() -> Iterator[VLLMEngine]:
    models_dir = Settings().models_dir
    prepare_generation_model(models_dir)  # instant when already prepared
    settings = Settings(
        models_dir=models_dir,
        generation_model=None,
        max_model_len=MAX_MODEL_LEN,
        max_tokens_limit=MAX_MODEL_LEN // 2,  # startup refuses a limit the context cannot hold
        max_num_seqs=16,
        enforce_eager=True,
        cpu_kvcache_gib=1,
    )
    started = time.perf_counter()
    eng = VLLMEngine.from_settings(settings)
    print(f"\nvLLM engine started in {time.perf_counter() - started:.1f} s")
    yield eng
    eng.close()


def _request(
    *,
    prompt: str | None = "The three primary colors are",
    messages: list[dict[str, str]] | None = None,
    max_tokens: int = 16,
    extra: dict[str, object] | None = None,
    constraint: OutputConstraint | None = None,
    **params: object,
) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"test-{uuid.uuid4().hex[:12]}",
        params=GenerateParams.model_validate({"temperature": 0.0, **params}),
        prompt=None if messages is not None else prompt,
        messages=messages,
        max_tokens=max_tokens,
        extra=extra or {},
        constraint=constraint,
    )


def _wait_idle(engine: VLLMEngine, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while engine.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.running() == 0


def test_the_started_engine_reports_what_it_holds(engine: VLLMEngine) -> None:
    capacity = engine.capacity
    assert capacity.max_num_seqs == 16 and capacity.max_model_len == MAX_MODEL_LEN
    # 1 GiB of CPU KV cache: tens of thousands of tokens of SmolLM2-135M (~23 KB a token)
    assert capacity.kv_cache_tokens is not None and 10_000 < capacity.kv_cache_tokens < 200_000
    assert capacity.sequences(MAX_MODEL_LEN) == 16


def test_missing_model_directory_is_model_not_prepared(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path / "nothing-here", generation_model=None)
    with pytest.raises(ModelNotPreparedError, match="textfleet models prepare"):
        VLLMEngine.from_settings(settings)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotPreparedError, match=r"config\.json"):
        VLLMEngine.from_settings(Settings(generation_model=str(empty)))


@pytest.mark.models
def test_engine_implements_the_protocol(engine: VLLMEngine) -> None:
    assert isinstance(engine, GenerationEngine)
    assert engine.running() == 0


@pytest.mark.models
def test_prompt_generation_returns_text_and_usage(engine: VLLMEngine) -> None:
    out = engine.generate(_request(max_tokens=16), timeout_s=60)
    assert isinstance(out, GenerationOutput)
    assert out.text.strip()
    assert out.finish_reason in {"stop", "length"}
    assert 3 <= out.prompt_tokens <= 10
    assert 1 <= out.completion_tokens <= 16
    # Greedy decoding is deterministic.
    assert engine.generate(_request(max_tokens=16), timeout_s=60).text == out.text


@pytest.mark.models
def test_chat_messages_use_the_chat_template(engine: VLLMEngine) -> None:
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    out = engine.generate(_request(messages=messages, max_tokens=24), timeout_s=60)
    assert out.text.strip()
    assert "<|im_start|>" not in out.text
    # system + user turns plus the assistant header: far more tokens than the bare question
    assert out.prompt_tokens > 20
    assert "paris" in out.text.lower()


@pytest.mark.models
def test_concurrent_threads_are_batched(engine: VLLMEngine) -> None:
    n, max_tokens = 8, 48
    results: dict[int, GenerationOutput] = {}
    errors: list[BaseException] = []
    max_running = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal max_running
        while not done.is_set():
            max_running = max(max_running, engine.running())
            time.sleep(0.005)

    def work(i: int) -> None:
        try:
            results[i] = engine.generate(
                _request(prompt=f"Story number {i}:", max_tokens=max_tokens, extra={"ignore_eos": True}),
                timeout_s=120,
            )
        except BaseException as exc:
            errors.append(exc)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()

    assert not errors
    assert sorted(results) == list(range(n))
    assert all(r.completion_tokens == max_tokens for r in results.values())
    assert all(r.finish_reason == "length" for r in results.values())
    assert max_running > 1, "requests ran one at a time: the engine did not batch them"
    print(f"\n{n} concurrent requests: {n * max_tokens / elapsed:.0f} tokens/s, max running {max_running}")
    _wait_idle(engine)


@pytest.mark.models
def test_min_tokens_equal_max_tokens_gives_exactly_that_many(engine: VLLMEngine) -> None:
    out = engine.generate(
        _request(prompt="Hi", max_tokens=24, min_tokens=24, temperature=0.7, seed=3), timeout_s=60
    )
    assert out.completion_tokens == 24
    assert out.finish_reason == "length"


@pytest.mark.models
def test_stop_strings_end_the_text(engine: VLLMEngine) -> None:
    base = engine.generate(_request(max_tokens=32, extra={"ignore_eos": True}), timeout_s=60).text
    # a stop string from the middle of the greedy continuation
    words = [w for w in base.split() if w.isalpha() and len(w) >= 3]
    assert len(words) >= 3, base
    stop = words[len(words) // 2]
    cut = base.index(stop)

    for stop_param in (stop, [stop, "@@never@@"]):
        out = engine.generate(
            _request(max_tokens=32, stop=stop_param, extra={"ignore_eos": True}), timeout_s=60
        )
        assert out.finish_reason == "stop"
        assert out.text == base[:cut]
        assert stop not in out.text
        assert out.completion_tokens < 32


@pytest.mark.models
def test_same_seed_same_text(engine: VLLMEngine) -> None:
    def sample(seed: int) -> str:
        return engine.generate(
            _request(prompt="Once upon a time", max_tokens=24, temperature=1.0, seed=seed), timeout_s=60
        ).text

    first = sample(1234)
    assert sample(1234) == first
    assert len({first, sample(1), sample(2), sample(3)}) > 1  # sampling really samples


@pytest.mark.models
def test_timeout_aborts_and_engine_keeps_serving(engine: VLLMEngine) -> None:
    request = _request(prompt="Count forever:", max_tokens=400, extra={"ignore_eos": True})
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="aborted"):
        engine.generate(request, timeout_s=0.5)
    assert time.perf_counter() - started < 5
    _wait_idle(engine)  # the request left the engine: it was aborted, not left running
    out = engine.generate(_request(max_tokens=8), timeout_s=60)
    assert out.completion_tokens > 0


@pytest.mark.models
def test_abort_from_another_thread(engine: VLLMEngine) -> None:
    request = _request(prompt="Count forever:", max_tokens=400, extra={"ignore_eos": True})
    result: list[GenerationOutput] = []
    worker = threading.Thread(target=lambda: result.append(engine.generate(request, timeout_s=120)))
    worker.start()
    deadline = time.monotonic() + 30
    while engine.running() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    engine.abort(request.request_id)
    worker.join(timeout=30)
    assert result, "generate() did not return after abort"
    assert result[0].finish_reason == "abort"
    assert result[0].completion_tokens < 400
    engine.abort("no-such-request")  # a no-op
    _wait_idle(engine)


@pytest.mark.models
def test_over_long_prompt_is_rejected_and_engine_keeps_serving(engine: VLLMEngine) -> None:
    with pytest.raises((InvalidInputError, EngineError), match="tokens long") as info:
        engine.generate(_request(prompt="word " * (MAX_MODEL_LEN * 2)), timeout_s=60)
    assert isinstance(info.value, InvalidInputError)
    assert info.value.code == "prompt_too_long"
    long_chat = [{"role": "user", "content": "hello " * MAX_MODEL_LEN}]
    with pytest.raises(InvalidInputError):
        engine.generate(_request(messages=long_chat), timeout_s=60)
    # A prompt that fits but leaves less room than max_tokens is cut at the context end.
    near = engine.generate(
        _request(prompt="word " * (MAX_MODEL_LEN - 20), max_tokens=200, extra={"ignore_eos": True}),
        timeout_s=120,
    )
    assert near.prompt_tokens + near.completion_tokens <= MAX_MODEL_LEN
    assert near.finish_reason == "length"
    assert engine.generate(_request(max_tokens=8), timeout_s=60).completion_tokens > 0


@pytest.mark.models
def test_bad_sampling_options_are_invalid_input(engine: VLLMEngine) -> None:
    with pytest.raises(InvalidInputError, match="unsupported sampling options"):
        engine.generate(_request(extra={"n": 3}), timeout_s=60)
    with pytest.raises(InvalidInputError):
        engine.generate(_request(extra={"min_p": 5.0}), timeout_s=60)
    assert engine.generate(_request(max_tokens=4), timeout_s=60).completion_tokens > 0


# --- Structured output (issue 14) -------------------------------------------------------------------

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"enum": ["Paris", "London", "Rome"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


@pytest.mark.models
@pytest.mark.parametrize(
    "constraint",
    [
        OutputConstraint.json_schema(PERSON_SCHEMA),
        OutputConstraint("json_object"),
        OutputConstraint("regex", "[A-Z]{3}-[0-9]{4}"),
        OutputConstraint("choice", ("yes", "no", "maybe")),
    ],
    ids=["json_schema", "json_object", "regex", "choice"],
)
def test_constrained_output_satisfies_its_constraint(
    engine: VLLMEngine, constraint: OutputConstraint
) -> None:
    prompt = "Describe a person as JSON:" if constraint.kind.startswith("json") else "Answer:"
    outs = [
        engine.generate(
            _request(prompt=prompt, max_tokens=96, temperature=1.0, seed=seed, constraint=constraint),
            timeout_s=120,
        )
        for seed in range(3)
    ]
    for out in outs:
        assert output_problem(constraint, out.text, out.finish_reason) is None, out
        assert out.finish_reason == "stop"
    if constraint.kind == "json":
        assert all(parse_json_output(out.text)["city"] in ("Paris", "London", "Rome") for out in outs)


@pytest.mark.models
def test_unconstrained_output_of_the_same_prompt_is_not_json(engine: VLLMEngine) -> None:
    out = engine.generate(_request(prompt="Answer:", max_tokens=24, extra={"ignore_eos": True}), timeout_s=60)
    assert output_problem(OutputConstraint("json_object"), out.text, out.finish_reason) is not None


@pytest.mark.models
def test_a_constraint_the_backend_rejects_is_invalid_input(engine: VLLMEngine) -> None:
    # The API rejects these first; the engine must still fail only the request, never the worker.
    with pytest.raises(InvalidInputError):
        engine.generate(_request(constraint=OutputConstraint("regex", "(?=a)a")), timeout_s=60)
    assert engine.generate(_request(max_tokens=4), timeout_s=60).completion_tokens > 0


@pytest.mark.models
def test_structured_bench_harness_measures_a_case_and_the_grammar_cache(engine: VLLMEngine) -> None:
    # The harness of `textfleet bench --scenario structured`, tiny: it asserts nothing about speed.
    from bench.workloads.structured import CASES, markdown_table, measure_case, measure_grammar_cache

    regex_case = next(case for case in CASES if case.constraint.kind == "regex")
    row = measure_case(engine, regex_case, 2)
    assert row["requests"] == 4 and row["valid"] == 4
    assert row["constrained_tokens_per_s"] > 0 and row["unconstrained_tokens_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["constrained_tokens_per_s"] / row["unconstrained_tokens_per_s"])
    cache = measure_grammar_cache(engine)
    assert set(cache) == {"unconstrained_s", "new_schema_s", "cached_schema_s"}
    assert all(value > 0 for value in cache.values())
    table = markdown_table({"cases": {regex_case.name: row}, "grammar_cache": cache})
    assert f"| {regex_case.name} | 4/4 |" in table and "Grammar cache" in table
