"""Where a run's settings come from besides a preset and `key=value` overrides: a settings file (TOML, YAML or
JSON, laid out as a run's own `config.json`), a finished or unfinished run's directory (to repeat it with changes),
and the one-line help of every key, read from the comment beside its definition (as CleanRL documents its
arguments)."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import pathlib
import tokenize

from .config import Config, ConfigError, apply_overrides
from .rl.config import RLConfig

SETTINGS_GROUPS = {"method_settings": "method", "agent_settings": "agent"}  # config.json field -> override prefix


def field_help(cls: type) -> dict[str, str]:
    """field name -> the comment on its line in the class body (or a base class's), with the comment-only lines
    that continue it (`#` then two or more spaces; `# heading` lines start sections and belong to no field)."""
    found: dict[str, str] = {}
    for klass in cls.__mro__:
        if dataclasses.is_dataclass(klass):
            found = {**_own_field_help(klass), **found}
    return found


def _own_field_help(cls: type) -> dict[str, str]:
    source = inspect.getsource(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    raw: dict[int, str] = {}
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
            raw[token.start[0]] = token.string
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(token.start[0])
    found = {}
    for number, line in enumerate(source.splitlines(), 1):
        name = line.strip().partition(":")[0]
        if name in names and name not in found and number in comments and number in code_lines:
            text, following = [comments[number]], number + 1
            while following in comments and following not in code_lines and raw[following].startswith("#  "):
                text.append(comments[following])
                following += 1
            found[name] = " ".join(text)
    return found


def _text(value) -> str:
    """A value as the command line writes it."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(_text, value))
    return str(value)


def as_overrides(settings: dict, source: str) -> list[str]:
    """`key=value` overrides from a dict laid out as a run's config.json (groups as `method_settings` tables)."""
    overrides = []
    for key, value in settings.items():
        if key in SETTINGS_GROUPS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key} must be a table of settings, got {value!r}")
            overrides += [f"{SETTINGS_GROUPS[key]}.{k}={_text(v)}" for k, v in value.items()]
        else:
            overrides.append(f"{key}={_text(value)}")
    return overrides


def read_settings_file(path: str | pathlib.Path) -> dict:
    """The dict of a TOML (.toml), YAML (.yaml, .yml; needs PyYAML) or JSON (.json) settings file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            settings = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"--config {path}: YAML needs PyYAML (pip install pyyaml), or write TOML") from None
            settings = yaml.safe_load(text)
        elif path.suffix == ".json":
            settings = json.loads(text)
        else:
            raise ConfigError(f"--config {path}: write it as .toml, .yaml or .json")
    except ConfigError:
        raise
    except Exception as error:  # each parser has its own error class; all mean a malformed file
        raise ConfigError(f"--config {path} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"--config {path} must hold a table of key = value settings")
    return settings


def merged(first: list[str], then: list[str]) -> list[str]:
    """Overrides `first` with those of `then` in their place where both set a key (the command line wins)."""
    later = {o.partition("=")[0] for o in then}
    return [o for o in first if o.partition("=")[0] not in later] + then


def from_run(directory: str | pathlib.Path, overrides: list[str]):
    """The config of the run in `directory` (its config.json) with `overrides` applied, validated. A `method=`
    override starts from the new method's defaults (the old method's settings would not fit)."""
    path = pathlib.Path(directory) / "config.json"
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--from {directory}: no config.json there; give a run directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"--from {directory}: its config.json is damaged ({error})") from None
    if not isinstance(stored, dict) or "method" not in stored:
        raise ConfigError(f"--from {directory}: its config.json is not a hare-tortoise run")
    kind = RLConfig if "agent" in stored else Config
    config = kind.from_dict(kind.completed(stored))
    methods_ = [o.partition("=")[2] for o in overrides if o.startswith("method=")]
    if methods_ and methods_[-1] != config.method:
        config = dataclasses.replace(config, method=methods_[-1], method_settings={})
    return apply_overrides(config, [o for o in overrides if not o.startswith("method=")]).validate()


def describe(config) -> str:
    """The resolved `config` as `key = value  # help` lines, its settings groups (method., agent.) after it."""
    from . import methods
    from .rl.agents import AGENTS

    groups = {"method_settings": methods.get(config.method)}
    if isinstance(config, RLConfig):
        groups["agent_settings"] = AGENTS[config.agent].settings
    lines, helps = [], field_help(type(config))
    for field in dataclasses.fields(config):
        if field.name in groups:
            continue
        help_ = helps.get(field.name, "")
        lines.append(f"{field.name} = {_text(getattr(config, field.name))}" + (f"  # {help_}" if help_ else ""))
    for attr, cls in groups.items():
        prefix, given = SETTINGS_GROUPS[attr], getattr(config, attr)
        helps = field_help(cls)
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            value = given.get(field.name, field.default)
            help_ = helps.get(field.name, "")
            lines.append(f"{prefix}.{field.name} = {_text(value)}" + (f"  # {help_}" if help_ else ""))
    return "\n".join(lines)
