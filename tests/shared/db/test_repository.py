"""Only the repository writes the jobs table: every INSERT, UPDATE and DELETE of it (SQLAlchemy
`insert(Job)` / `update(Job)` / `delete(Job)`, `Job(...)` rows, SQL text on `jobs`) lives in
`shared/db/repository.py`, or in `shared/db/worker_ends.py`, the repository's grouped completion of a
worker's own jobs (its own module for length), so each state transition is written once. Found by
reading the product code's source."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
REPOSITORY = ROOT / "shared" / "db" / "repository.py"
WORKER_ENDS = ROOT / "shared" / "db" / "worker_ends.py"
#: Not product code, or not a write of rows: tests, the table's own definition, schema migrations.
SKIPPED = {"tests", "shared/migrations", "shared/db/models.py"}

WRITES = [
    # insert(Job), pg_insert(Job), update(Job.__table__)
    re.compile(r"\b\w*(insert|update|delete)\(\s*Job\b"),
    re.compile(r"(?<!class )\bJob\("),  # an ORM row to session.add
    re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE)\s+\"?jobs\b", re.IGNORECASE),  # SQL text
]


def _product_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(".") or "/." in relative or "site-packages" in relative:
            continue
        if any(relative == skip or relative.startswith(skip + "/") for skip in SKIPPED):
            continue
        files.append(path)
    return files


def _writes(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if any(pattern.search(line) for pattern in WRITES):
            found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_only_the_repository_writes_the_jobs_table() -> None:
    files = _product_files()
    assert REPOSITORY in files
    assert len(files) > 50, "the scan must see the product packages"
    elsewhere = [hit for path in files if path not in (REPOSITORY, WORKER_ENDS) for hit in _writes(path)]
    assert elsewhere == [], "write the jobs table in shared/db/repository.py:\n" + "\n".join(elsewhere)


def test_the_patterns_find_the_repository_writes() -> None:
    """The scan is not vacuous: it sees the repository's own INSERT, UPDATE and DELETE."""
    text = "\n".join(_writes(REPOSITORY))
    assert "insert(Job)" in text and "update(Job)" in text and "delete(Job)" in text
    assert "UPDATE jobs" in "\n".join(_writes(WORKER_ENDS))
    assert _writes_in('session.execute(text("UPDATE jobs SET status = :s"))')
    assert _writes_in("session.add(Job(id=new_job_id()))")
    assert not _writes_in("class Job(Base):")


def _writes_in(line: str) -> bool:
    return any(pattern.search(line) for pattern in WRITES)
