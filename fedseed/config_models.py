"""Strict pydantic models derived from the configuration dataclasses: they check every key, type and list element
of a TOML document, one line per error naming the key, and give the JSON Schema of a configuration file.

The dataclasses stay what the rest of fedseed builds, reads and pickles; the models are made from their fields, so
a key added to a dataclass is checked and documented without touching this module."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, create_model

from fedseed.strategies import REGISTRY, all_strategies, strategy_class
from fedseed.strategies.base import StrategyConfig

# strict: "3" is no int and 1 is no bool; an int still counts as a float (TOML users write `lr = 1`)
STRICT = ConfigDict(strict=True, extra="forbid")
STRATEGY = "strategy"  # the one table whose keys depend on a value in it (strategy.name)
DEFAULT_STRATEGY: str = StrategyConfig.name
TYPE_NAMES = {"int_type": "int", "float_type": "float", "string_type": "str", "bool_type": "bool",
              "list_type": "list"}

# (table name, dataclass) pairs in file order; a None dataclass stands for the [strategy] table
Tables = tuple[tuple[str, type | None], ...]


class ConfigError(ValueError):
    """A bad configuration; the message names the offending key."""


def _table_model(cls: type, title: str, strategy_name: str | None = None) -> type[BaseModel]:
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], f.default)
        else:
            fields[f.name] = (hints[f.name], Field(default_factory=f.default_factory))
    if strategy_name is not None:  # several names share a dataclass (fedavg, mezo), so each gets its own model
        fields["name"] = (Literal[strategy_name], strategy_name)
    return create_model(title, __config__=STRICT, **fields)


def _strategy_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):  # a checked table, being dumped
        return getattr(value, "name", None)
    if not isinstance(value, dict):
        return None
    name = value.get("name", DEFAULT_STRATEGY)
    return name if isinstance(name, str) else repr(name)  # a non-string name matches no tag


def strategy_models() -> dict[str, type[BaseModel]]:
    """One model per registered strategy (rebuilt when a strategy registers)."""
    return _strategy_models(tuple(REGISTRY.items()))


@functools.cache
def _strategy_models(registered: tuple[tuple[str, type], ...]) -> dict[str, type[BaseModel]]:
    return {name: _table_model(s.config_class, f"strategy_{name.replace('-', '_')}", name) for name, s in registered}


def _strategy_union() -> Any:
    choices = tuple(Annotated[model, Tag(name)] for name, model in strategy_models().items())
    return Annotated[Union[choices], Discriminator(_strategy_tag)]  # noqa: UP007 (a runtime-built union)


def document_model(tables: Tables) -> type[BaseModel]:
    return _document_model(tables, tuple(REGISTRY.items()))


@functools.cache
def _document_model(tables: Tables, registered: tuple[tuple[str, type], ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for section, cls in tables:
        if cls is None:
            fields[section] = (_strategy_union(), Field(default_factory=strategy_models()[DEFAULT_STRATEGY]))
        else:
            model = _table_model(cls, section)
            fields[section] = (model, Field(default_factory=model))
    return create_model("configuration", __config__=STRICT, **fields)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def error_line(err: Any) -> str:
    """One pydantic error as one line naming the key, e.g. config key 'model.trainable[0]' must be str."""
    loc, kind, value = list(err["loc"]), err["type"], err.get("input")
    context = ""
    if loc[:1] == [STRATEGY] and len(loc) > 1 and loc[1] in REGISTRY:  # in the union: the chosen strategy
        context = f" for strategy '{loc[1]}'"
        loc = [STRATEGY, *loc[2:]]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if kind == "extra_forbidden":
        return f"unknown config section '{key}'" if len(loc) == 1 else f"unknown config key '{key}'{context}"
    if kind == "union_tag_invalid":
        name = value.get("name")
        if not isinstance(name, str):
            return f"config key 'strategy.name' must be str, got {type(name).__name__} ({_short(name)})"
        try:
            strategy_class(name)
        except ValueError as e:
            return f"config key 'strategy.name': {e}"
    if kind in ("model_type", "union_tag_not_found", "dict_type"):
        return f"config key '{key}' must be a table"
    if kind in TYPE_NAMES:
        return f"config key '{key}' must be {TYPE_NAMES[kind]}, got {type(value).__name__} ({_short(value)})"
    return f"config key '{key}'{context}: {err['msg']}"


def validate_tables(doc: dict, tables: Tables) -> dict[str, Any]:
    """Each table of doc checked against its dataclass (unknown tables refused); the dataclass instances by table
    name. The first error, naming its key, becomes a ConfigError."""
    name = doc.get(STRATEGY, {}).get("name") if isinstance(doc.get(STRATEGY), dict) else None
    if isinstance(name, str):
        try:
            strategy_class(name)  # a strategy from another package registers itself on first lookup
        except ValueError:
            pass  # named by the validation error below
    try:
        checked = document_model(tables).model_validate(doc).model_dump()
    except ValidationError as e:
        errors = e.errors(include_url=False)
        more = f" (and {len(errors) - 1} more config errors)" if len(errors) > 1 else ""
        raise ConfigError(error_line(errors[0]) + more) from None
    out = {}
    for section, cls in tables:
        table = checked[section]
        out[section] = (cls or strategy_class(table["name"]).config_class)(**table)
    return out


def json_schema(tables: Tables) -> dict[str, Any]:
    """The JSON Schema of a file holding these tables; [strategy] is one of the strategies' tables, by its name."""
    all_strategies()  # the schema lists strategies of installed packages too
    schema = document_model(tables).model_json_schema()
    schema["title"] = "fedseed configuration"
    strategy = schema["properties"].get(STRATEGY)
    if strategy is not None:
        refs = [choice["$ref"] for choice in strategy["oneOf"]]
        strategy["discriminator"] = {"propertyName": "name", "mapping": dict(zip(strategy_models(), refs))}
        strategy["description"] = (f"the keys of the strategy named by strategy.name (default {DEFAULT_STRATEGY}): "
                                   + ", ".join(strategy_models()))
    return schema
