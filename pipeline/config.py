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


@dataclass(frozen=True)
class ReportParams:
    registered_model: str = "imdb-sentiment"
    promotion_margin: float = 0.0

    def __post_init__(self):
        _check(bool(self.registered_model), "report.registered_model", "must not be empty")
        _check(0 <= self.promotion_margin < 1, "report.promotion_margin",
               "must be between 0 and 1 (an accuracy difference)")


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
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    baseline: BaselineParams
    report: ReportParams
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
    return Params(
        seed=int(_require(raw, "seed")),
        download=_section(DownloadParams, raw, "download"),
        prepare=_section(PrepareParams, raw, "prepare"),
        train=_section(TrainParams, raw, "train"),
        evaluate=_section(EvaluateParams, raw, "evaluate"),
        baseline=_section(BaselineParams, raw, "baseline"),
        report=_section(ReportParams, raw, "report"),
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

