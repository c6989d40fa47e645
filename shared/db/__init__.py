"""Database layer: ORM models, sessions, the job repository and migrations."""

from shared.db.models import Base, Job, utcnow
from shared.db.session import get_engine, get_sessionmaker, session_scope

__all__ = ["Base", "Job", "get_engine", "get_sessionmaker", "session_scope", "utcnow"]
