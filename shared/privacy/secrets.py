"""Where settings (secrets above all) come from besides the environment: files.

Two conventions, both of Docker and Kubernetes secrets, on every settings class that derives from
`SecretSources` (`shared.settings.Settings` and its groups):

* `TEXTFLEET_<FIELD>_FILE=/path`: the field's value is the file's content (one trailing newline
  dropped), e.g. `TEXTFLEET_WEBHOOK_SECRET_FILE=/run/secrets/webhook-secret`. Setting both
  `TEXTFLEET_<FIELD>` and `TEXTFLEET_<FIELD>_FILE` is an error (which one would win is a guess).
* `TEXTFLEET_SECRETS_DIR=/run/secrets`: a directory of files named `textfleet_<field>` (pydantic-settings'
  `secrets_dir`), read for the fields the environment leaves unset.

Precedence: arguments, the environment (a variable or its `_FILE`), `.env`, the secrets directory,
defaults. Hand-written beside pydantic-settings because its `secrets_dir` has no `*_FILE` form.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

__all__ = ["FILE_SUFFIX", "SECRETS_DIR_VARIABLE", "FileVariablesSource", "SecretSources"]

#: The suffix of a variable that names a file holding the value of the variable without it.
FILE_SUFFIX = "_FILE"
#: The variable naming a directory of secret files (`textfleet_<field>`).
SECRETS_DIR_VARIABLE = "TEXTFLEET_SECRETS_DIR"


class FileVariablesSource(PydanticBaseSettingsSource):
    """Values of `<PREFIX><FIELD>_FILE` variables: the content of the file each one names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix", "")).upper()
        environ = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"{prefix}{name.upper()}"
            path = environ.get(variable + FILE_SUFFIX)
            if not path:
                continue
            if variable in environ:
                raise SettingsError(f"set {variable} or {variable}{FILE_SUFFIX}, not both")
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:  # the path only: never the content
                problem = f"{variable}{FILE_SUFFIX}: cannot read {path} ({exc.__class__.__name__})"
                raise SettingsError(problem) from None
            values[name] = text.removesuffix("\n").removesuffix("\r")
        return values


class SecretSources(BaseSettings):
    """A settings class whose values may also come from files (see the module docstring), and whose
    validation errors never repeat the values they were given (a secret among them)."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, FileVariablesSource(settings_cls), dotenv_settings]
        directory = os.environ.get(SECRETS_DIR_VARIABLE)
        if directory:
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=directory))
        return tuple(sources)
