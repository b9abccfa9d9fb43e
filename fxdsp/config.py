"""One config helper: frozen dataclasses ↔ dict, JSON and YAML, validated, with clear errors.

:class:`ConfigBase` gives a dataclass ``to_dict``/``from_dict``, ``to_json``/``from_json``,
``to_yaml``/``from_yaml`` and ``from_file``. ``from_dict`` refuses what is not a mapping and
unknown fields, and turns the dataclass' own ``TypeError`` into a ``ValueError``; the class'
``__post_init__`` validates values. The readers name the file (or "text") and the parser's
complaint, and refuse JSON's non-standard ``NaN``/``Infinity`` literals::

    @dataclass(frozen=True)
    class ModelConfig(ConfigBase):
        channels: int = 64

    cfg = ModelConfig.from_json("model.json")
    cfg.to_yaml("model.yaml")

:class:`~fxdsp.chain_config.ChainConfig` and the model configs of the other packages use it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from fxdsp.io import atomic_write_text

__all__ = ["ConfigBase", "check_number", "parse_json", "parse_yaml", "read_source"]

T = TypeVar("T", bound="ConfigBase")


def read_source(source: str | Path, looks_like_text: bool, what: str = "config") -> tuple[str, str]:
    """``(text, origin)`` of a file path, or of the text itself when ``looks_like_text``."""
    if isinstance(source, str) and looks_like_text:
        return source, "text"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise ValueError(f"no such {what} file: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {what} file {path}: {err}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} (JSON has no NaN or Infinity)")


def parse_json(source: str | Path, what: str = "config") -> Any:
    """Parse JSON from a path or from text starting with ``{`` or ``[``; clear errors.

    ``what`` names the kind of file in the messages (``"no such stats file: ..."``).
    """
    looks = isinstance(source, str) and source.lstrip()[:1] in ("{", "[")
    text, origin = read_source(source, looks, what)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"malformed JSON in {origin}: {err}") from None
    except ValueError as err:
        raise ValueError(f"bad JSON in {origin}: {err}") from None


def parse_yaml(source: str | Path) -> Any:
    """Parse YAML from a path or from multi-line text; clear errors (needs PyYAML)."""
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("YAML configs need PyYAML (pip install pyyaml)") from err
    looks = isinstance(source, str) and "\n" in source
    text, origin = read_source(source, looks)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"malformed YAML in {origin}: {err}") from None


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> float:
    """A finite number (not a bool) within ``[low, high]`` (``(low, high]`` if ``low_open``).

    Raises:
        ValueError: naming ``name``, the value and the allowed interval.
    """
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v)
    bad |= low is not None and (v <= low if low_open else v < low)
    bad |= high is not None and v > high
    if bad:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        opening = "(" if low_open or low is None else "["
        closing = "]" if high is not None else ")"
        interval = f"{opening}{lo}, {hi}{closing}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return v


class ConfigBase:
    """Mixin for frozen dataclass configs: dict/JSON/YAML round trips with validation."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: Any) -> T:
        """Build from a mapping of field values; missing fields take their defaults.

        Raises:
            ValueError: not a mapping, an unknown field, or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a {cls.__name__} must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} field(s) {sorted(map(str, unknown))}; "
                f"expected some of {sorted(known)}"
            )
        try:
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"bad {cls.__name__}: {err}") from None

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize to JSON text; also write it (atomically) to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls: type[T], source: str | Path) -> T:
        """Load from a JSON file path, or from JSON text (a string starting with ``{``)."""
        return cls.from_dict(parse_json(source))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Serialize to YAML text (needs PyYAML); also write it to ``path`` if given."""
        try:
            import yaml
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("YAML configs need PyYAML (pip install pyyaml)") from err
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls: type[T], source: str | Path) -> T:
        """Load from a YAML file path or YAML text (needs PyYAML)."""
        return cls.from_dict(parse_yaml(source))

    @classmethod
    def from_file(cls: type[T], path: str | Path) -> T:
        """Load a ``.json``, ``.yaml`` or ``.yml`` file."""
        suffix = Path(path).suffix.lower()
        if suffix == ".json":
            return cls.from_json(Path(path))
        if suffix in (".yaml", ".yml"):
            return cls.from_yaml(Path(path))
        raise ValueError(f"{path}: a config file must end in .json, .yaml or .yml")
