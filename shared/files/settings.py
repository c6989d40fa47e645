"""Settings of files and batches (`TEXTFLEET_FILES_*`, `TEXTFLEET_BATCH_*`).

A group of `shared.settings.Settings` (`settings.files`), read from the same environment with the same
prefix, so each variable is `TEXTFLEET_<FIELD>`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.constants import PRIORITY_MAX, PRIORITY_MIN
from shared.privacy.secrets import SecretSources

__all__ = ["FilesSettings"]


class FilesSettings(SecretSources):
    """Where uploaded files live and how batches run. Each field is `TEXTFLEET_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTFLEET_", env_file=".env", extra="ignore", case_sensitive=False
    )

    files_backend: Literal["database", "s3"] = Field(
        "database",
        description="Where file bytes live: `database` (the jobs database, embedded default) or `s3` "
        "(any S3-compatible object store, through boto3).",
    )
    files_s3_bucket: str | None = Field(None, description="Bucket of the `s3` backend (required with it).")
    files_s3_prefix: str = Field("textfleet/files/", description="Key prefix of files in the bucket.")
    files_s3_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible store (MinIO, SeaweedFS, ...); AWS S3 if unset."
    )
    files_s3_region: str = Field("us-east-1", description="Region name passed to the S3 client.")
    files_s3_access_key_id: str | None = Field(
        None, description="Access key of the `s3` backend; unset: boto3's usual credential chain."
    )
    files_s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret key of the `s3` backend (with `files_s3_access_key_id`)."
    )
    files_max_bytes: int = Field(200 * 1024 * 1024, gt=0, description="Largest upload (OpenAI: 200 MB).")
    batch_max_requests: int = Field(50_000, gt=0, description="Most requests in one batch (OpenAI: 50,000).")
    batch_priority: int = Field(
        2,
        ge=PRIORITY_MIN,
        le=PRIORITY_MAX,
        description="Priority of a batch's jobs (interactive jobs default to 5: batches yield to them). "
        "A `/v1/jobs` line that sets its own `priority` keeps it.",
    )
    batch_max_errors: int = Field(
        100, gt=0, description="Most line errors listed in a batch that failed validation."
    )

    @model_validator(mode="after")
    def _s3_complete(self) -> FilesSettings:
        if self.files_backend == "s3" and not self.files_s3_bucket:
            raise ValueError("files_backend=s3 needs files_s3_bucket")
        if (self.files_s3_access_key_id is None) != (self.files_s3_secret_access_key is None):
            raise ValueError("give both files_s3_access_key_id and files_s3_secret_access_key, or neither")
        return self
