"""The contract between textfleet's API and workers: settings, job schemas, names, DB models, errors."""

from shared.constants import Queue, TaskName
from shared.errors import TextfleetError
from shared.schemas import JobStatus
from shared.settings import Settings, get_settings

__all__ = ["JobStatus", "Queue", "Settings", "TaskName", "TextfleetError", "get_settings"]
