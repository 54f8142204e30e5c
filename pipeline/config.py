"""params.yaml as one small typed object per section. Invalid params fail here, naming the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")  # names compile_model knows
TRAINING_KEYS = ("learning_rate", "batch_size", "optimizer")  # the rest go to the builder
PRUNERS = ("median", "hyperband", "none")


class ParamsError(ValueError):  # noqa: N818
    """A value in params.yaml is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class DownloadParams:
    url: str
    sha256: str
    retries: int = 3

    def __post_init__(self):
        _check(len(self.sha256) == 64 and _is_hex(self.sha256), "download.sha256",
               f"must be 64 hex digits, got {self.sha256!r}")
        _check(self.retries >= 0, "download.retries", "must be >= 0")


@dataclass(frozen=True)
class ValidateParams:
    balance_tolerance: float
    min_words: int
    max_words: int
    median_words: tuple[int, int]
    duplicates_by: str = "normalized"
    drop_duplicates: bool = False

    def __post_init__(self):
        object.__setattr__(self, "median_words", tuple(self.median_words))
        _check(0 <= self.balance_tolerance < 0.5, "validate.balance_tolerance",
               "must be between 0 and 0.5 (a distance from a 50% positive share)")
        _check(1 <= self.min_words <= self.max_words, "validate.min_words",
               "must be >= 1 and <= validate.max_words")
        _check(len(self.median_words) == 2 and self.median_words[0] <= self.median_words[1],
               "validate.median_words", "must be [low, high] with low <= high")
        _check(self.duplicates_by in ("exact", "normalized"), "validate.duplicates_by",
               "must be 'exact' or 'normalized'")
        _check(isinstance(self.drop_duplicates, bool), "validate.drop_duplicates",
               "must be true or false")


@dataclass(frozen=True)
class PrepareParams:
    val_fraction: float
    vocab_size: int
    maxlen: int
    padding: str = "pre"
    truncating: str = "pre"

    def __post_init__(self):
        _check(0 < self.val_fraction < 1, "prepare.val_fraction", "must be between 0 and 1")
        _check(self.vocab_size >= 3, "prepare.vocab_size", "must be >= 3")
        _check(self.maxlen >= 1, "prepare.maxlen", "must be >= 1")
        _check(self.padding in ("pre", "post"), "prepare.padding", "must be 'pre' or 'post'")
        _check(self.truncating in ("pre", "post"), "prepare.truncating",
               "must be 'pre' or 'post'")


SCHEDULES = ("plateau", "cosine")


@dataclass(frozen=True)
class TrainParams:
    max_epochs: int
    patience: int
    clipnorm: float | None = None
    bucket_width: int = 0
    jit_compile: str | bool = "auto"
    reduce_lr_factor: float = 1.0
    schedule: str = "plateau"

    def __post_init__(self):
        _check(self.max_epochs >= 1, "train.max_epochs", "must be >= 1")
        _check(self.schedule in SCHEDULES, "train.schedule",
               f"must be one of {', '.join(SCHEDULES)}")
        _check(self.patience >= 0, "train.patience", "must be >= 0")
        _check(0 < self.reduce_lr_factor <= 1, "train.reduce_lr_factor",
               "must be in (0, 1]: the learning rate is multiplied by it when val_loss rises "
               "(1: never)")
        _check(self.clipnorm is None or self.clipnorm > 0, "train.clipnorm",
               "must be > 0, or null for no clipping")
        _check(self.bucket_width >= 0, "train.bucket_width", "must be >= 0 (0: no bucketing)")
        _check(self.jit_compile in ("auto", True, False), "train.jit_compile",
               "must be auto, true or false")


@dataclass(frozen=True)
class EvaluateParams:
    threshold: float = 0.5
    batch_size: int = 512
    n_bootstrap: int = 1000
    confidence: float = 0.95
    calibration_bins: int = 10

    def __post_init__(self):
        _check(0 < self.threshold < 1, "evaluate.threshold", "must be between 0 and 1")
        _check(self.n_bootstrap >= 100, "evaluate.n_bootstrap", "must be >= 100")
        _check(0.5 <= self.confidence < 1, "evaluate.confidence",
               "must be at least 0.5 and below 1, e.g. 0.95")
        _check(self.calibration_bins >= 2, "evaluate.calibration_bins", "must be >= 2")


@dataclass(frozen=True)
class BaselineParams:
    min_df: int = 2
    max_features: int | None = None
    C: float = 1.0  # noqa: N815  (scikit-learn's name for the inverse regularization strength)

    def __post_init__(self):
        _check(self.min_df >= 1, "baseline.min_df", "must be >= 1 (a count of reviews)")
        _check(self.max_features is None or self.max_features >= 1, "baseline.max_features",
               "must be >= 1, or null for every n-gram seen in min_df reviews")
        _check(self.C > 0, "baseline.C", "must be > 0")


BEHAVIOR_TYPES = ("mft", "inv", "dir")


@dataclass(frozen=True)
class ReportParams:
    registered_model: str = "imdb-sentiment"
    promotion_margin: float = 0.0
    behavior_thresholds: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(BEHAVIOR_TYPES, 0.0))
    behavior_dir_tolerance: float = 0.01

    def __post_init__(self):
        _check(bool(self.registered_model), "report.registered_model", "must not be empty")
        _check(0 <= self.promotion_margin < 1, "report.promotion_margin",
               "must be between 0 and 1 (an accuracy difference)")
        thresholds = self.behavior_thresholds
        _check(isinstance(thresholds, dict) and set(thresholds) == set(BEHAVIOR_TYPES),
               "report.behavior_thresholds", f"must give exactly {', '.join(BEHAVIOR_TYPES)}")
        for kind, value in thresholds.items():
            _check(isinstance(value, int | float) and 0 <= value <= 1,
                   f"report.behavior_thresholds.{kind}", "must be a pass rate between 0 and 1")
        _check(0 <= self.behavior_dir_tolerance < 1, "report.behavior_dir_tolerance",
               "must be between 0 and 1 (a probability)")


@dataclass(frozen=True)
class LessonsParams:
    """The two lessons: accuracy against review length, and gradients against distance."""

    maxlens: tuple[int, ...]
    max_epochs: int
    sequence_architectures: tuple[str, ...]
    gradient_architectures: tuple[str, ...]
    gradient_reviews: int
    gradient_timesteps: int

    def __post_init__(self):
        object.__setattr__(self, "maxlens", tuple(self.maxlens))
        object.__setattr__(self, "sequence_architectures", tuple(self.sequence_architectures))
        object.__setattr__(self, "gradient_architectures", tuple(self.gradient_architectures))
        _check(len(self.maxlens) >= 1 and all(m >= 1 for m in self.maxlens), "lessons.maxlens",
               "must list at least one length >= 1")
        _check(self.max_epochs >= 1, "lessons.max_epochs", "must be >= 1")
        _check(self.gradient_reviews >= 1, "lessons.gradient_reviews", "must be >= 1")
        _check(self.gradient_timesteps >= 2, "lessons.gradient_timesteps", "must be >= 2")


@dataclass(frozen=True)
class TuneParams:
    """A study's budget: trials, not seconds, so the same params give the same trials."""

    n_trials: int
    pruner: str = "median"
    startup_trials: int = 1
    warmup_epochs: int = 1
    max_minutes: float | None = None

    def __post_init__(self):
        _check(self.n_trials >= 0, "tune.n_trials", "must be >= 0 (0: no tuning)")
        _check(self.pruner in PRUNERS, "tune.pruner", f"must be one of {', '.join(PRUNERS)}")
        _check(self.startup_trials >= 0, "tune.startup_trials", "must be >= 0")
        _check(self.warmup_epochs >= 0, "tune.warmup_epochs", "must be >= 0")
        _check(self.max_minutes is None or self.max_minutes > 0, "tune.max_minutes",
               "must be > 0, or null for no time guard")


@dataclass(frozen=True)
class SearchRange:
    """One searched hyperparameter: a numeric range (int when both ends are ints) or choices."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return self.low <= value <= self.high

    def as_dict(self) -> dict:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class ModelParams:
    """One architecture's section: training settings plus its builder's keyword arguments."""

    architecture: str
    learning_rate: float
    batch_size: int
    hyperparameters: dict[str, Any]
    optimizer: str = "adam"

    def __post_init__(self):
        key = f"models.{self.architecture}"
        _check(self.learning_rate > 0, f"{key}.learning_rate", "must be > 0")
        _check(self.batch_size >= 1, f"{key}.batch_size", "must be >= 1")
        _check(self.optimizer in OPTIMIZERS, f"{key}.optimizer",
               f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")

    def as_dict(self) -> dict:
        """The flat form params.yaml uses: training keys and builder arguments side by side."""
        return {"learning_rate": self.learning_rate, "batch_size": self.batch_size,
                "optimizer": self.optimizer, **self.hyperparameters}

    def with_values(self, values: dict[str, Any]) -> ModelParams:
        """These params with some keys replaced (e.g. by a trial's or a study's best values)."""
        return model_params(self.architecture, {**self.as_dict(), **values})


@dataclass(frozen=True)
class Params:
    seed: int
    download: DownloadParams
    validate: ValidateParams
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    baseline: BaselineParams
    report: ReportParams
    lessons: LessonsParams
    tune: TuneParams
    architectures: tuple[str, ...]
    models: dict[str, ModelParams]
    search_spaces: dict[str, dict[str, SearchRange]]

    def model(self, architecture: str) -> ModelParams:
        if architecture not in self.models:
            raise ParamsError(
                f"unknown architecture {architecture!r}: params.yaml lists "
                f"{', '.join(self.architectures)}")
        return self.models[architecture]


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project root") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ParamsError(f"{path} is not valid YAML{where}: {problem}; fix the file there "
                          "(e.g. an unclosed bracket or quote, or a tab used to indent)") from None
    return parse_params(raw)


def parse_params(raw: dict[str, Any]) -> Params:
    from pipeline.models import ARCHITECTURES

    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    architectures = _require(raw, "architectures")
    _check(isinstance(architectures, list) and all(isinstance(a, str) for a in architectures),
           "architectures", f"must be a list of architecture names, got {architectures!r}")
    architectures = tuple(architectures)
    models_raw = _require(raw, "models")
    spaces_raw = _require(raw, "search_spaces")
    models, search_spaces = {}, {}
    for name in architectures:
        _check(name in ARCHITECTURES, "architectures",
               f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
        models[name] = model_params(name, _require(models_raw, name, prefix="models."))
        space = _require(spaces_raw, name, prefix="search_spaces.")  # {} searches nothing
        _check(isinstance(space, dict), f"search_spaces.{name}",
               "must be a mapping of hyperparameter -> {low, high, log} or {choices}")
        search_spaces[name] = {key: search_range(name, key, spec) for key, spec in space.items()}
    prepare = _section(PrepareParams, raw, "prepare")
    lessons = _section(LessonsParams, raw, "lessons")
    # The lessons cut the prepared sequences, so they cannot ask for more tokens than exist.
    _check(max(lessons.maxlens) <= prepare.maxlen, "lessons.maxlens",
           f"must not exceed prepare.maxlen ({prepare.maxlen})")
    _check(lessons.gradient_timesteps <= prepare.maxlen, "lessons.gradient_timesteps",
           f"must not exceed prepare.maxlen ({prepare.maxlen})")
    for key in ("sequence_architectures", "gradient_architectures"):
        for name in getattr(lessons, key):
            _check(name in architectures, f"lessons.{key}",
                   f"lists {name!r}, which is not in architectures")
    return Params(
        seed=_typed(_require(raw, "seed"), int, "seed"),
        download=_section(DownloadParams, raw, "download"),
        validate=_section(ValidateParams, raw, "validate"),
        prepare=prepare,
        train=_section(TrainParams, raw, "train"),
        evaluate=_section(EvaluateParams, raw, "evaluate"),
        baseline=_section(BaselineParams, raw, "baseline"),
        report=_section(ReportParams, raw, "report"),
        lessons=lessons,
        tune=_section(TuneParams, raw, "tune"),
        architectures=architectures,
        models=models,
        search_spaces=search_spaces,
    )


def model_params(architecture: str, section: dict[str, Any], where: str = "models") -> ModelParams:
    """Check one architecture's flat hyperparameters and split them into training and builder."""
    from pipeline.models import builder_arguments

    prefix = f"{where}.{architecture}."
    _check(isinstance(section, dict), prefix.rstrip("."), "must be a mapping of hyperparameters")
    _check_hyperparameter_names(architecture, section, prefix)
    hyperparameters = {k: v for k, v in section.items() if k in builder_arguments(architecture)}
    _check_hyperparameter_values(architecture, hyperparameters, prefix)
    return ModelParams(
        architecture=architecture,
        learning_rate=_typed(_require(section, "learning_rate", prefix), float,
                             f"{prefix}learning_rate"),
        batch_size=_typed(_require(section, "batch_size", prefix), int, f"{prefix}batch_size"),
        optimizer=section.get("optimizer") or "adam",
        hyperparameters=hyperparameters,
    )


def _check_hyperparameter_values(architecture: str, hyperparameters: dict, prefix: str) -> None:
    """Each builder argument has the type of its default: sizes are ints >= 1, dropout a rate."""
    import inspect

    from pipeline.models import ARCHITECTURES, RECURRENT_CELLS

    defaults = {name: p.default for name, p in
                inspect.signature(ARCHITECTURES[architecture]).parameters.items()}
    for name, value in hyperparameters.items():
        key, default = f"{prefix}{name}", defaults[name]
        if name == "cell":
            _check(value in RECURRENT_CELLS, key,
                   f"must be one of {', '.join(RECURRENT_CELLS)}, got {value!r}")
        elif isinstance(default, float):  # dropout rates
            _check(0 <= _typed(value, float, key) < 1, key, f"must be in [0, 1), got {value!r}")
        elif isinstance(default, int):  # embedding_dim, units, filters, kernel_size, pool_size
            _check(_typed(value, int, key) >= 1, key, f"must be >= 1, got {value!r}")


def search_range(architecture: str, name: str, spec: Any) -> SearchRange:
    from pipeline.models import RECURRENT_CELLS

    key = f"search_spaces.{architecture}.{name}"
    _check_hyperparameter_names(architecture, {name: None}, f"search_spaces.{architecture}.")
    _check(isinstance(spec, dict), key, "must be {low, high[, log]} or {choices: [...]}")
    if "choices" in spec:
        _check(set(spec) == {"choices"}, key, "takes choices alone, without low/high/log")
        choices = spec["choices"]
        _check(isinstance(choices, list) and len(choices) > 0, f"{key}.choices",
               "must be a non-empty list")
        known = {"optimizer": OPTIMIZERS, "cell": tuple(RECURRENT_CELLS)}.get(name)
        for choice in choices:
            _check(known is None or choice in known, f"{key}.choices",
                   f"has unknown {name} {choice!r}; known: {', '.join(known or ())}")
        return SearchRange(choices=tuple(choices))
    for end in ("low", "high"):
        value = _require(spec, end, prefix=f"{key}.")
        _check(isinstance(value, int | float) and not isinstance(value, bool), f"{key}.{end}",
               f"must be a number, got {value!r}")
    unknown = set(spec) - {"low", "high", "log"}
    _check(not unknown, key, f"has unknown keys {sorted(unknown)}; use low, high, log or choices")
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    _check(low <= high, key, f"has low ({low}) > high ({high})")
    _check(not log or low > 0, key, "needs low > 0 with log: true")
    return SearchRange(low=low, high=high, log=bool(log))


def _check_hyperparameter_names(architecture: str, section: dict, prefix: str) -> None:
    from pipeline.models import builder_arguments

    allowed = builder_arguments(architecture)
    for key in section:
        _check(key in allowed or key in TRAINING_KEYS, f"{prefix}{key}",
               f"is not a hyperparameter of {architecture}; allowed: "
               f"{', '.join(TRAINING_KEYS)}, {', '.join(sorted(allowed))}")


def _section(cls, raw: dict, name: str):
    section = _require(raw, name)
    _check(isinstance(section, dict), name, f"must be a mapping of keys, got {section!r}")
    known = {f.name for f in fields(cls)}
    for key in section:
        _check(key in known, f"{name}.{key}", f"is not a known key; known: {', '.join(known)}")
    required = {f.name for f in fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for key in required:
        _require(section, key, prefix=f"{name}.")
    hints = typing.get_type_hints(cls)
    for key, value in section.items():
        _typed(value, hints[key], f"{name}.{key}")
    try:
        return cls(**section)
    except TypeError as err:
        raise ParamsError(f"params.yaml section {name!r}: {err}") from None


def _typed(value: Any, kind: Any, key: str) -> Any:
    """`value` if it has the type `kind` (an int is a float too; a bool is neither); else fail."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    for option in options:
        base = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return value
        if base is bool and isinstance(value, bool):
            return value
        if isinstance(value, bool):
            continue
        if base is int and isinstance(value, int):
            return value
        if base is float and isinstance(value, int | float):
            return float(value)
        if base in (str, dict) and isinstance(value, base):
            return value
        if base is tuple and isinstance(value, list | tuple):
            return value
    wanted = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
              tuple: "a list", dict: "a mapping", type(None): "null"}
    names = " or ".join(wanted[typing.get_origin(o) or o] for o in options)
    raise ParamsError(f"params.yaml: {key} must be {names}, got {value!r} "
                      f"({type(value).__name__})")


def _require(mapping: Any, key: str, prefix: str = "") -> Any:
    if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
        raise ParamsError(f"params.yaml: missing {prefix}{key}")
    return mapping[key]


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ParamsError(f"params.yaml: {key} {message}")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)

