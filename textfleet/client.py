"""A small HTTP client of the textfleet API, used by the CLI (`submit`, `get`, `demo`, `bench`)."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx

__all__ = ["ApiError", "TextfleetClient"]


class ApiError(Exception):
    """The API answered with an error response."""

    def __init__(self, status_code: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"HTTP {status_code}: {error.get('message', body)}")
        self.status_code = status_code
        self.body = body


class TextfleetClient:
    """Submit jobs and read them back over HTTP, with the API key `api_key` (default: the environment's
    TEXTFLEET_API_KEY; none where the API runs open, as `textfleet dev` does by default)."""

    def __init__(self, base_url: str, timeout: float = 75.0, api_key: str | None = None) -> None:
        key = api_key or os.environ.get("TEXTFLEET_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else None
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    def __enter__(self) -> TextfleetClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        body = response.json()
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        assert isinstance(body, dict)
        return body

    def submit(
        self,
        task: str,
        input_: dict[str, Any],
        params: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        priority: int | None = None,
    ) -> dict[str, Any]:
        """POST /v1/jobs; returns the queued job."""
        body: dict[str, Any] = {"task": task, "input": input_}
        if params:
            body["params"] = params
        if metadata:
            body["metadata"] = metadata
        if priority is not None:
            body["priority"] = priority
        return self._json(self.http.post("/v1/jobs", json=body))

    def get(self, job_id: str, wait: float | None = None) -> dict[str, Any]:
        """GET /v1/jobs/{id}, optionally holding up to `wait` seconds for a terminal state."""
        query = {"wait": wait} if wait else None
        return self._json(self.http.get(f"/v1/jobs/{job_id}", params=query))

    def resend_webhook(self, job_id: str, event: str) -> dict[str, Any]:
        """POST /v1/jobs/{id}/webhooks/{event}/resend; returns the delivery, pending again."""
        return self._json(self.http.post(f"/v1/jobs/{job_id}/webhooks/{event}/resend"))

    def resend_batch_webhook(self, batch_id: str) -> dict[str, Any]:
        """POST /v1/batches/{id}/webhook/resend; returns the delivery of the batch's event, pending again."""
        return self._json(self.http.post(f"/v1/batches/{batch_id}/webhook/resend"))

    def wait(self, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Block until the job is terminal (long-polling with ?wait=)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            job = self.get(job_id, wait=max(1, min(60, int(remaining))))
            if job["status"] not in ("queued", "running") or remaining <= 0:
                return job
