"""A minimal Celery app for broker-loss tests: textfleet's delivery settings, nothing else.

`TEXTFLEET_TEST_BROKER` is the Redis URL; `TEXTFLEET_TEST_TRANSPORT` selects the transport (kombu's
own when unset); each task touches `<TEXTFLEET_TEST_MARKS>/<name>` when it starts, then sleeps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery

app = Celery("broker-test", broker=os.environ["TEXTFLEET_TEST_BROKER"], set_as_current=False)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    worker_hijack_root_logger=False,
    task_ignore_result=True,
)
if os.environ.get("TEXTFLEET_TEST_TRANSPORT"):
    app.conf.broker_transport = os.environ["TEXTFLEET_TEST_TRANSPORT"]


@app.task(name="hold", acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def hold(name: str, seconds: float) -> None:
    (Path(os.environ["TEXTFLEET_TEST_MARKS"]) / name).touch()
    time.sleep(seconds)
