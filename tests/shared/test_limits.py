"""The limits in force: the global settings' by default, those set by `limits_in_force` inside it
(in its task and the threads it hands work to), and the global ones again after it."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from shared.limits import Limits, current_limits, limits_in_force
from shared.schemas import TextInput
from shared.settings import Settings, get_settings


def test_default_limits_are_the_global_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_MAX_INPUT_CHARS", "12")
    get_settings.cache_clear()
    try:
        assert current_limits() == Limits.from_settings(get_settings())
        assert current_limits().max_input_chars == 12
    finally:
        get_settings.cache_clear()


def test_limits_in_force_override_and_are_restored() -> None:
    small = Limits.from_settings(Settings(max_input_chars=5))
    TextInput(text="123456")  # within the global limit
    with limits_in_force(small):
        assert current_limits() is small
        with pytest.raises(ValidationError, match="the maximum is 5"):
            TextInput(text="123456")
    TextInput(text="123456")


def test_limits_follow_the_task_and_its_threadpool_work() -> None:
    small = Limits.from_settings(Settings(max_input_chars=5))

    async def request() -> tuple[int, int]:
        with limits_in_force(small):
            here = current_limits().max_input_chars
            context = contextvars.copy_context()  # what Starlette's run_in_threadpool hands on
            with ThreadPoolExecutor(1) as pool:
                there = await asyncio.get_running_loop().run_in_executor(
                    pool, context.run, lambda: current_limits().max_input_chars
                )
            return here, there

    assert asyncio.run(request()) == (5, 5)
    assert current_limits().max_input_chars == get_settings().max_input_chars
