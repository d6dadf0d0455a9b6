"""`-c 'key=value ...'` overrides: parsed leniently, validated locally, passed on to `flwr run`.

`flwr run -c` parses values as TOML, so a bare word like `strategy=fedprox` is a
syntax error there. Here a value that is not valid TOML is taken as a string, the
result is checked with `RunConfig` before anything starts, and it is re-encoded in
the quoted form `flwr` expects.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

from fedapp.config import ConfigError, RunConfig


def parse_overrides(texts: list[str]) -> dict[str, Any]:
    """Parse `key=value` pairs (space separated, in any number of strings) into typed values.

    A key given twice (in one string or in two `-c` flags) is refused: which value was
    meant is not knowable, and silently taking the last hides a typo.
    """
    pairs: dict[str, str] = {}
    for text in texts:
        for pair in shlex.split(text):
            key, sep, _ = pair.partition("=")
            if not sep or not key:
                raise ConfigError(f"override {pair!r} is not of the form key=value")
            if key in pairs:
                raise ConfigError(
                    f"run-config key {key!r} is given twice ({pairs[key]!r} and {pair!r}); "
                    "allowed: each key once across all -c options"
                )
            pairs[key] = pair
    return {key: _parse_value(pair.partition("=")[2]) for key, pair in pairs.items()}


def _parse_value(raw: str) -> Any:
    """A TOML scalar (int, float, bool, quoted string) or, failing that, the raw string."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def to_flwr_arguments(overrides: dict[str, Any]) -> list[str]:
    """Encode overrides as `flwr run -c` arguments (one `-c key=<toml value>` per key)."""
    arguments: list[str] = []
    for key, value in overrides.items():
        encoded = (
            json.dumps(value)
            if isinstance(value, str)
            else str(value).lower()
            if isinstance(value, bool)
            else repr(value)
        )
        arguments += ["-c", f"{key}={encoded}"]
    return arguments


def app_defaults(app_dir: Path) -> dict[str, Any]:
    """The `[tool.flwr.app.config]` defaults of the app in `app_dir`.

    Raises
    ------
    ConfigError
        Naming the file, if it cannot be read, is not valid TOML or has no such table.
    """
    path = app_dir / "pyproject.toml"
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read the app's {path} ({error.strerror}); allowed: a Flower app folder") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); allowed: a TOML file") from None
    table = document.get("tool", {}).get("flwr", {}).get("app", {}).get("config")
    if not isinstance(table, dict):
        raise ConfigError(
            f"{path} has no [tool.flwr.app.config] table; allowed: a Flower app's pyproject.toml "
            "declaring every run-config key with its default"
        )
    return table


def as_text_where_declared(app_dir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Numbers given to keys whose default is text, as text: `hidden-sizes=5`, `input-shape=10`.

    TOML reads a bare `5` as an integer; for a text key (a list of widths, a shape, a
    column name) the user meant the text, and `flwr run` must be sent the text.
    """
    defaults = app_defaults(app_dir)
    return {
        key: str(value)
        if isinstance(defaults.get(key), str) and isinstance(value, int | float) and not isinstance(value, bool)
        else value
        for key, value in overrides.items()
    }


def validated_config(app_dir: Path, overrides: dict[str, Any]) -> RunConfig:
    """The run config `flwr run` will produce for these overrides, validated (raises `ConfigError`)."""
    return RunConfig.from_mapping({**app_defaults(app_dir), **as_text_where_declared(app_dir, overrides)})
