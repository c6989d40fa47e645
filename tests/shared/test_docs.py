"""README's tasks table is the one generated from the task registry."""

from __future__ import annotations

from pathlib import Path

from shared.docs import TABLE_BEGIN, TABLE_END, main, readme_with_table, tasks_table
from shared.tasks import TASKS
from tests.utils.echo_task import registry_with_echo

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_tasks_table_is_generated() -> None:
    text = README.read_text(encoding="utf-8")
    stale = "README's tasks table is stale: run `python -m shared.docs --write-readme`"
    assert readme_with_table(text) == text, stale


def test_table_has_one_row_per_task_and_follows_the_registry() -> None:
    rows = tasks_table().splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == [f"`{name}`" for name in TASKS.names]
    assert "| `extract` | `generate` | vllm |" in tasks_table()
    assert "`schema`" in tasks_table()  # aliases, not Python names
    assert "`timeout_s`" not in tasks_table()  # the deadlines are documented once, under the table
    last = tasks_table(registry_with_echo()).splitlines()[-1]
    assert last.startswith("| `echo` | `classify` | classifier |")


def test_write_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{TABLE_BEGIN}\nold\n{TABLE_END}\n\nafter\n", encoding="utf-8")
    assert main(["--write-readme", str(readme)]) == 0
    expected = f"# x\n\n{TABLE_BEGIN}\n{tasks_table()}\n{TABLE_END}\n\nafter\n"
    assert readme.read_text(encoding="utf-8") == expected
