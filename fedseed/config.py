"""Run configuration: a TOML file with [run], [model], [adapter], [data], [federation], [strategy], [eval], [robust],
[privacy], [simulation] tables, checked key by key (types and list elements included, by fedseed.config_models);
any error names the key it is about."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tomllib
from dataclasses import dataclass, field
from typing import Any

from fedseed.adapters import AdapterSection
from fedseed.config_models import ConfigError, Tables, json_schema, validate_tables
from fedseed.privacy import PrivacySection, check_private_run
from fedseed.robust import RobustSection
from fedseed.strategies import strategy_class
from fedseed.strategies.base import StrategyConfig

BUILTIN_MODELS = ("tiny-random-llama", "smollm2-135m-instruct", "gemma3-270m")  # fedseed.models' names
COMPUTE_DTYPES = ("float32", "bfloat16", "float16", "auto")  # auto: bf16 where native (fedseed/precision.py)


def device_problem(name: str) -> str | None:
    """Why this process cannot compute on the device `name` ("cpu", "cuda" or "cuda:N"), or None."""
    if name == "cpu":
        return None
    if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
        return f"must be 'cpu', 'cuda' or 'cuda:N', not {name!r}"
    import torch

    if not torch.cuda.is_available():
        return f"is {name!r} but no CUDA device is visible to this process"
    if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
        return f"is {name!r} but this process sees {torch.cuda.device_count()} CUDA device(s)"
    return None


@dataclass
class RunSection:
    seed: int = 0
    rounds: int = 10
    out: str = "runs/run"


@dataclass
class ModelSection:
    name: str = "tiny-random-llama"
    trainable: list[str] = field(default_factory=list)  # regexes over parameter names; empty = all
    backend: str = "compiled"
    device: str = "cpu"
    max_length: int = 128
    threads: int = 0  # 0 = torch's default
    state: str = "auto"  # compact (int32, streamed) | wide (fp32 + fp32 base + int64) | auto: compact where it can
    compute_dtype: str = "float32"  # forwards autocast to bfloat16 | float16 | auto, or float32 (the state: exact)


@dataclass
class DataSection:
    source: str = "sentiment"
    path: str = ""
    label_words: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    eval_tasks: list[str] = field(default_factory=list)  # evals tasks held out for evaluation (none trains on them)
    eval_size: int = 300
    partition: str = "dirichlet"
    alpha: float = 0.5
    max_train: int = 0  # 0 = all training examples


@dataclass
class FederationSection:
    num_clients: int = 20
    clients_per_round: int = 5
    sample_fraction: float = 0.0  # > 0: clients_per_round = max(1, int(num_clients * sample_fraction))
    batch_size: int = 16
    # Heterogeneity (simulation only), drawn per (run seed, round, client):
    local_steps_min: int = 0  # > 0: a client's local steps are uniform in [local_steps_min, strategy.local_steps]
    dropout: float = 0.0  # probability that a sampled client never reports
    straggler_fraction: float = 0.0  # share of clients that are slow, fixed per client for the run
    straggler_slowdown: float = 4.0  # a straggler's time per local step, in units of a normal client's
    deadline_steps: float = 0.0  # > 0: results taking longer than this many normal steps arrive late and are dropped


@dataclass
class SimulationSection:
    backend: str = "inline"  # inline | processes | ray
    workers: int = 2  # processes / ray: worker models, each running its share of a round's clients
    worker_threads: int = 0  # torch threads per worker; 0 = model.threads, else cpu count / workers
    ray_address: str = ""  # an existing Ray cluster ("auto", "ray://host:10001"); empty = a local instance
    tensorboard: bool = False  # also write per-round scalars to <out>/tensorboard


@dataclass
class EvalSection:
    every: int = 5
    batch_size: int = 32
    rouge: bool = False  # generation data: also score greedy generations by Rouge-L F (eval_rougeL)
    max_new_tokens: int = 32


@dataclass
class Config:
    run: RunSection
    model: ModelSection
    data: DataSection
    federation: FederationSection
    strategy: StrategyConfig
    eval: EvalSection
    robust: RobustSection = field(default_factory=lambda: RobustSection())
    privacy: PrivacySection = field(default_factory=lambda: PrivacySection())
    simulation: SimulationSection = field(default_factory=lambda: SimulationSection())
    adapter: AdapterSection = field(default_factory=lambda: AdapterSection())


# Tables read by `fedseed server` and `fedseed client` (server/config.py, client/config.py), not by runs.
PROCESS_SECTIONS = ("server", "client")
# The run tables in file order; None: the [strategy] table, whose keys are those of the strategy it names
RUN_TABLES: Tables = (("run", RunSection), ("model", ModelSection), ("adapter", AdapterSection), ("data", DataSection),
                      ("federation", FederationSection), ("strategy", None), ("eval", EvalSection),
                      ("robust", RobustSection), ("privacy", PrivacySection), ("simulation", SimulationSection))
BACKENDS = ("inline", "processes", "ray")


def parse_value(text: str) -> Any:
    """A --set value: TOML syntax when it parses (numbers, booleans, lists, quoted strings), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(doc: dict, overrides: list[str]) -> None:
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        section, _, name = key.strip().partition(".")
        doc.setdefault(section, {})
        if not isinstance(doc[section], dict):
            raise ConfigError(f"config key '{section}' must be a table")
        doc[section][name] = parse_value(text.strip())


def build_config(doc: dict) -> Config:
    """The run configuration of a TOML document: every key, type and list element checked, then every range."""
    run_doc = {k: v for k, v in doc.items() if k not in PROCESS_SECTIONS}
    parts = validate_tables(run_doc, RUN_TABLES)
    fed = parts["federation"]
    if not 0.0 <= fed.sample_fraction <= 1.0:
        raise ConfigError(f"config key 'federation.sample_fraction' must be in [0, 1], got {fed.sample_fraction}")
    if fed.sample_fraction > 0:
        fed.clients_per_round = max(1, int(fed.num_clients * fed.sample_fraction))
    if parts["privacy"].private and "clip_factor" not in run_doc.get("robust", {}):
        parts["robust"].clip_factor = 0.0  # the median clip reads every client's scalars; privacy.clip bounds them
    cfg = Config(**parts)
    validate(cfg)
    return cfg


def check_adapter(cfg: Config) -> None:
    """The [adapter] table against the strategy and the trainable set."""
    name, kind = cfg.strategy.name, cfg.adapter.kind
    if strategy_class(name).needs_adapter and kind == "none":
        raise ConfigError(f"strategy {name} trains LoRA adapters: add an [adapter] table with kind = \"lora\"")
    if name == "fedavg" and kind != "none":
        raise ConfigError("config key 'adapter.kind': FedAvg over LoRA adapters is FedIT: set strategy.name = "
                          "\"fedit\" (fedavg is the full-parameter baseline)")
    if kind != "none" and cfg.model.trainable:
        raise ConfigError("config key 'model.trainable': with an [adapter] the adapter's weights are the trainable "
                          "set; leave model.trainable empty")


LR_RELATIVE_NEEDS_MODEL = ("the lr is set from the model's measured |g|, which needs a coordinator holding the "
                           "model (server.hold_model = true); or set an absolute lr")


def check_lr_relative(cfg: Config) -> None:
    """strategy.lr_relative needs a step lr * g * z along SPSA scalars g."""
    name = cfg.strategy.name
    if cfg.strategy.lr_relative and not strategy_class(name).steps_along_spsa_scalars:
        why = ("FZOO normalises its steps by the spread of its probes' losses already" if name == "fzoo" else
               f"strategy {name} takes first-order steps")
        raise ConfigError(f"config key 'strategy.lr_relative': it scales lr by the measured |g| of zeroth-order "
                          f"steps lr * g * z, and {why}; set an absolute strategy.lr")


def validate(cfg: Config) -> None:
    try:
        cfg.strategy.validate()
        cfg.robust.validate()
        cfg.privacy.validate()
        cfg.adapter.validate()
        check_private_run(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    resolve_state_format(cfg)
    if cfg.robust.rule != "mean" and not strategy_class(cfg.strategy.name).shares_seeds(cfg.strategy):
        raise ConfigError(f"config key 'robust.rule': {cfg.robust.rule} is coordinate-wise, so it needs seeds shared "
                          f"by a round's clients; strategy {cfg.strategy.name} gives each client its own (use "
                          "fedkseed or fedkseed-pro with strategy.shared_seeds = true, or robust.norm_factor and "
                          "robust.outlier_factor, which work in any seed space)")
    check_adapter(cfg)
    check_lr_relative(cfg)
    checks = [
        ("run.rounds", cfg.run.rounds >= 1, "must be >= 1"),
        ("federation.num_clients", cfg.federation.num_clients >= 1, "must be >= 1"),
        ("federation.clients_per_round", 1 <= cfg.federation.clients_per_round <= cfg.federation.num_clients,
         "must be between 1 and federation.num_clients"),
        ("federation.batch_size", cfg.federation.batch_size >= 1, "must be >= 1"),
        ("model.backend", cfg.model.backend in ("eager", "compiled"), "must be 'eager' or 'compiled'"),
        ("model.max_length", cfg.model.max_length >= 8, "must be >= 8"),
        ("model.device", (device_issue := device_problem(cfg.model.device)) is None, device_issue or ""),
        ("model.compute_dtype", cfg.model.compute_dtype in COMPUTE_DTYPES,
         f"must be one of {', '.join(COMPUTE_DTYPES)}"),
        ("data.eval_size", cfg.data.eval_size >= 1, "must be >= 1"),
        ("eval.every", cfg.eval.every >= 1, "must be >= 1"),
        ("eval.max_new_tokens", cfg.eval.max_new_tokens >= 1, "must be >= 1"),
        ("federation.dropout", 0.0 <= cfg.federation.dropout < 1.0, "must be in [0, 1)"),
        ("federation.straggler_fraction", 0.0 <= cfg.federation.straggler_fraction <= 1.0, "must be in [0, 1]"),
        ("federation.straggler_slowdown", cfg.federation.straggler_slowdown >= 1.0, "must be >= 1"),
        ("federation.deadline_steps", cfg.federation.deadline_steps >= 0.0, "must be >= 0"),
        ("federation.local_steps_min", 0 <= cfg.federation.local_steps_min <= cfg.strategy.local_steps,
         "must be between 0 and strategy.local_steps"),
        ("simulation.backend", cfg.simulation.backend in BACKENDS, f"must be one of {', '.join(BACKENDS)}"),
        ("simulation.workers", cfg.simulation.workers >= 1, "must be >= 1"),
        ("simulation.worker_threads", cfg.simulation.worker_threads >= 0, "must be >= 0"),
    ]
    for key, ok, msg in checks:
        if not ok:
            raise ConfigError(f"config key '{key}' {msg}")
    if cfg.federation.local_steps_min and not strategy_class(cfg.strategy.name).varies_steps:
        raise ConfigError(f"config key 'federation.local_steps_min': strategy {cfg.strategy.name} has a fixed "
                          "number of local steps")
    if set(cfg.data.eval_tasks) & set(cfg.data.tasks):
        raise ConfigError("config key 'data.eval_tasks' must not name a training task (data.tasks)")
    if cfg.data.eval_tasks and cfg.data.source != "evals":
        raise ConfigError("config key 'data.eval_tasks' needs data.source = 'evals'")
    if cfg.data.source == "jsonl" and not pathlib.Path(cfg.data.path).is_file():
        raise ConfigError(f"config key 'data.path': file {cfg.data.path!r} does not exist")
    name = cfg.model.name
    if name not in BUILTIN_MODELS and not pathlib.Path(name).is_dir():
        raise ConfigError(f"config key 'model.name': {name!r} is neither a built-in model "
                          f"({', '.join(BUILTIN_MODELS)}) nor a folder")


def resolve_state_format(cfg: Config) -> None:
    """model.state = auto becomes compact for zeroth-order strategies on rademacher directions, wide otherwise;
    an explicit compact that cannot work is refused with the reason."""
    first_order = strategy_class(cfg.strategy.name).first_order
    rademacher = cfg.strategy.direction == "rademacher"
    if cfg.model.state == "auto":
        cfg.model.state = "compact" if rademacher and not first_order else "wide"
    elif cfg.model.state == "compact" and first_order:
        raise ConfigError(f"config key 'model.state': compact streams weights into forwards without autograd; "
                          f"strategy {cfg.strategy.name} trains with backpropagation (use 'wide')")
    elif cfg.model.state == "compact" and not rademacher:
        raise ConfigError("config key 'model.state': compact takes rademacher directions only "
                          "(strategy.direction = 'rademacher', or model.state = 'wide')")
    elif cfg.model.state not in ("compact", "wide"):
        raise ConfigError(f"config key 'model.state' must be 'auto', 'compact' or 'wide', got {cfg.model.state!r}")


def load_config(path: str, overrides: list[str] | None = None) -> Config:
    return build_config(load_document(path, overrides))


def read_toml(path: str) -> dict:
    p = pathlib.Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


def read_with_base(path: str, chain: tuple[str, ...] = ()) -> dict:
    """A TOML document; a top-level `extends = "other.toml"` (relative to the file) supplies every key the
    document leaves out, table by table -- one shared base for a family of experiment recipes."""
    doc = read_toml(path)
    base = doc.pop("extends", None)
    if base is None:
        return doc
    if not isinstance(base, str):
        raise ConfigError(f"config file {path}: 'extends' must be a file name")
    base_path = str(pathlib.Path(path).parent / base)
    if base_path in chain:
        raise ConfigError(f"config file {path}: 'extends' loops back to {base}")
    merged = read_with_base(base_path, (*chain, path))
    for section, table in doc.items():
        if isinstance(table, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **table}
        else:
            merged[section] = table
    return merged


def load_document(path: str, overrides: list[str] | None = None) -> dict:
    """The TOML document (over its base) with overrides applied and a relative data path resolved against it."""
    p = pathlib.Path(path)
    doc = read_with_base(path)
    apply_overrides(doc, overrides or [])
    data = doc.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and data["path"]:
        candidate = p.parent / data["path"]  # a relative data path is relative to the config file
        if not pathlib.Path(data["path"]).is_absolute() and candidate.is_file():
            data["path"] = str(candidate)
    return doc


def fill_section(cls: type, doc: dict, section: str) -> Any:
    """A process table ([server], [client]) checked key by key like the run tables."""
    return validate_tables({section: doc.get(section, {})}, ((section, cls),))[section]


def config_schema(kind: str = "run") -> dict:
    """The JSON Schema of a run file or a server file (the run tables, and the [server] and [client] tables a run
    file may carry for loopback, plus `extends`), or a client file ([client])."""
    from fedseed.client.config import ClientSection

    if kind == "client":
        return json_schema((("client", ClientSection),))
    if kind not in ("run", "server"):
        raise ValueError(f"unknown configuration kind {kind!r}; expected run, server or client")
    from fedseed.server.config import ServerSection

    schema = json_schema((*RUN_TABLES, ("server", ServerSection), ("client", ClientSection)))
    schema["properties"]["extends"] = {"type": "string", "title": "extends",
                                       "description": "a base file (relative to this one) for every key left out"}
    return schema


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def dump_toml(doc: dict) -> str:
    """A TOML document of tables of scalars and (nested) lists -- the shape of every fedseed config."""
    lines = []
    for section, table in doc.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)
