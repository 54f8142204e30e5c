"""params.yaml as one small typed object per section. Invalid params fail here, naming the key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")


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


@dataclass(frozen=True)
class TrainParams:
    max_epochs: int
    patience: int
    clipnorm: float | None = None
    bucket_width: int = 0
    jit_compile: str | bool = "auto"

    def __post_init__(self):
        _check(self.max_epochs >= 1, "train.max_epochs", "must be >= 1")
        _check(self.patience >= 0, "train.patience", "must be >= 0")
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
    gradient_architectures: tuple[str, ...]
    gradient_reviews: int
    gradient_timesteps: int

    def __post_init__(self):
        object.__setattr__(self, "maxlens", tuple(self.maxlens))
        object.__setattr__(self, "gradient_architectures", tuple(self.gradient_architectures))
        _check(len(self.maxlens) >= 1 and all(m >= 1 for m in self.maxlens), "lessons.maxlens",
               "must list at least one length >= 1")
        _check(self.max_epochs >= 1, "lessons.max_epochs", "must be >= 1")
        _check(self.gradient_reviews >= 1, "lessons.gradient_reviews", "must be >= 1")
        _check(self.gradient_timesteps >= 2, "lessons.gradient_timesteps", "must be >= 2")


@dataclass(frozen=True)
class ModelParams:
    """One architecture's section: training settings plus its builder's keyword arguments."""

    architecture: str
    learning_rate: float
    batch_size: int
    hyperparameters: dict[str, Any]

    def __post_init__(self):
        key = f"models.{self.architecture}"
        _check(self.learning_rate > 0, f"{key}.learning_rate", "must be > 0")
        _check(self.batch_size >= 1, f"{key}.batch_size", "must be >= 1")


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
    architectures: tuple[str, ...]
    models: dict[str, ModelParams]

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
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    return parse_params(raw)


def parse_params(raw: dict[str, Any]) -> Params:
    from pipeline.models import ARCHITECTURES, builder_arguments

    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    architectures = tuple(_require(raw, "architectures"))
    models_raw = _require(raw, "models")
    models = {}
    for name in architectures:
        _check(name in ARCHITECTURES, "architectures",
               f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
        section = dict(_require(models_raw, name, prefix="models."))
        allowed = builder_arguments(name)
        for key in section:
            _check(key in allowed or key in ("learning_rate", "batch_size"),
                   f"models.{name}.{key}",
                   f"is not a hyperparameter of {name}; allowed: "
                   f"learning_rate, batch_size, {', '.join(sorted(allowed))}")
        models[name] = ModelParams(
            architecture=name,
            learning_rate=float(_require(section, "learning_rate", f"models.{name}.")),
            batch_size=int(_require(section, "batch_size", f"models.{name}.")),
            hyperparameters={k: v for k, v in section.items()
                             if k not in ("learning_rate", "batch_size")},
        )
    prepare = _section(PrepareParams, raw, "prepare")
    lessons = _section(LessonsParams, raw, "lessons")
    # The lessons cut the prepared sequences, so they cannot ask for more tokens than exist.
    _check(max(lessons.maxlens) <= prepare.maxlen, "lessons.maxlens",
           f"must not exceed prepare.maxlen ({prepare.maxlen})")
    _check(lessons.gradient_timesteps <= prepare.maxlen, "lessons.gradient_timesteps",
           f"must not exceed prepare.maxlen ({prepare.maxlen})")
    for name in lessons.gradient_architectures:
        _check(name in architectures, "lessons.gradient_architectures",
               f"lists {name!r}, which is not in architectures")
    return Params(
        seed=int(_require(raw, "seed")),
        download=_section(DownloadParams, raw, "download"),
        validate=_section(ValidateParams, raw, "validate"),
        prepare=prepare,
        train=_section(TrainParams, raw, "train"),
        evaluate=_section(EvaluateParams, raw, "evaluate"),
        baseline=_section(BaselineParams, raw, "baseline"),
        report=_section(ReportParams, raw, "report"),
        lessons=lessons,
        architectures=architectures,
        models=models,
    )


def _section(cls, raw: dict, name: str):
    section = _require(raw, name)
    known = {f.name for f in fields(cls)}
    for key in section:
        _check(key in known, f"{name}.{key}", f"is not a known key; known: {', '.join(known)}")
    required = {f.name for f in fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for key in required:
        _require(section, key, prefix=f"{name}.")
    try:
        return cls(**section)
    except TypeError as err:
        raise ParamsError(f"params.yaml section {name!r}: {err}") from None


def _require(mapping: Any, key: str, prefix: str = "") -> Any:
    if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
        raise ParamsError(f"params.yaml: missing {prefix}{key}")
    return mapping[key]


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ParamsError(f"params.yaml: {key} {message}")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)

