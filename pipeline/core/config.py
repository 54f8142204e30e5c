"""params.yaml as one pydantic schema: a frozen dataclass per section, unknown keys forbidden.

Invalid params fail here with a one-line ParamsError that names the key, says what it must be
and shows what it got. A params file may extend another (`extends: params.yaml`, as
params.small.yaml does): its values are merged over the other's, mapping by mapping.
"""

from __future__ import annotations

import functools
import typing
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo

PARAMS_FILE = Path("params.yaml")
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")  # names compile_model knows
TRAINING_KEYS = ("learning_rate", "batch_size", "optimizer")  # the rest go to the builder
PRUNERS = ("median", "hyperband", "none")
SCHEDULES = ("plateau", "cosine")
BEHAVIOR_TYPES = ("mft", "inv", "dir")


class ParamsError(ValueError):  # noqa: N818
    """A value in params.yaml is missing or invalid; the message names the key."""


class Invalid(ValueError):
    """A failed check inside the schema: `key`, below the object checked, and the fix."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Missing(Invalid):
    """A required key is absent (or null)."""

    def __init__(self, key: str):
        super().__init__(key, "is missing")


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise Invalid(key, message)


# --- value types: YAML's own, no coercion (a bool is not a number, "8" is not an int) ------

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # an int is accepted too, as a float
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Size = Annotated[Int, Field(ge=1)]
Rate = Annotated[Float, Field(ge=0, lt=1, description="in [0, 1)")]
Side = Annotated[Literal["pre", "post"], Field(description="'pre' or 'post'")]


def _number(value: Any) -> Any:
    """An int or a float, kept as it is (a search range of ints searches ints)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"must be a number, got {value!r} ({type(value).__name__})")
    return value


Number = Annotated[int | float | None, PlainValidator(_number)]
CONFIG = ConfigDict(frozen=True, extra="forbid")


def _schema(section: str):
    """A frozen pydantic dataclass that takes no unknown keys and raises a ParamsError naming
    the key under `section` ("models.{architecture}" is filled in from the arguments)."""
    def make(cls):
        cls = dataclass(config=CONFIG)(cls)
        validate = cls.__init__

        @functools.wraps(validate)
        def __init__(self, *args, **kwargs):
            try:
                validate(self, *args, **kwargs)
            except ValidationError as err:
                given = defaultdict(str, zip(cls.__dataclass_fields__, args, strict=False),
                                    **kwargs)
                raise ParamsError(_message(err, cls, section.format_map(given))) from None

        cls.__init__ = __init__
        return cls
    return make


# --- the sections ---------------------------------------------------------------------------

@_schema("download")
class DownloadParams:
    url: Str
    sha256: Annotated[Str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="64 hex digits")]
    retries: Annotated[Int, Field(ge=0)] = 3


@_schema("validate")
class ValidateParams:
    balance_tolerance: Annotated[Float, Field(
        ge=0, lt=0.5, description="between 0 and 0.5 (a distance from a 50% positive share)")]
    min_words: Size
    max_words: Int
    median_words: Annotated[tuple[Int, Int], Field(description="[low, high] with low <= high")]
    duplicates_by: Annotated[Literal["exact", "normalized"],
                             Field(description="'exact' or 'normalized'")] = "normalized"
    drop_duplicates: Bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ValidateParams:
        _check(self.min_words <= self.max_words, "min_words",
               "must be >= 1 and <= validate.max_words")
        low, high = self.median_words
        _check(low <= high, "median_words", "must be [low, high] with low <= high")
        return self


@_schema("prepare")
class PrepareParams:
    val_fraction: Annotated[Float, Field(gt=0, lt=1, description="between 0 and 1")]
    vocab_size: Annotated[Int, Field(ge=3)]
    maxlen: Size
    padding: Side = "pre"
    truncating: Side = "pre"


@_schema("train")
class TrainParams:
    max_epochs: Size
    patience: Annotated[Int, Field(ge=0)]
    clipnorm: Annotated[Float | None, Field(
        gt=0, description="> 0, or null for no clipping")] = None
    bucket_width: Annotated[Int, Field(ge=0, description=">= 0 (0: no bucketing)")] = 0
    jit_compile: Literal["auto", True, False] = "auto"
    reduce_lr_factor: Annotated[Float, Field(gt=0, le=1, description=(
        "in (0, 1]: the learning rate is multiplied by it when val_loss rises (1: never)"))] = 1.0
    schedule: Literal[SCHEDULES] = "plateau"

    @field_validator("jit_compile", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: Any) -> Any:
        _check(value == "auto" or isinstance(value, bool), "",
               f"must be auto, true or false, got {value!r}")
        return value


@_schema("evaluate")
class EvaluateParams:
    threshold: Annotated[Float, Field(gt=0, lt=1, description="between 0 and 1")] = 0.5
    batch_size: Size = 512
    n_bootstrap: Annotated[Int, Field(ge=100)] = 1000
    confidence: Annotated[Float, Field(
        ge=0.5, lt=1, description="at least 0.5 and below 1, e.g. 0.95")] = 0.95
    calibration_bins: Annotated[Int, Field(ge=2)] = 10


MinDf = Annotated[Int, Field(ge=1, description=">= 1 (a count of reviews)")]
InverseL2 = Annotated[Float, Field(gt=0)]  # scikit-learn's C


@_schema("baselines.tfidf_logreg")
class TfidfParams:
    min_df: MinDf = 2
    max_features: Annotated[Int | None, Field(
        ge=1, description=">= 1, or null for every n-gram seen in min_df reviews")] = None
    C: InverseL2 = 1.0  # noqa: N815


@_schema("baselines.nbsvm")
class NbsvmParams:
    max_n: Annotated[Int, Field(ge=1, le=3, description="1, 2 or 3 (longest n-gram)")] = 2
    min_df: MinDf = 1
    alpha: Annotated[Float, Field(gt=0, description="> 0 (a smoothing count)")] = 1.0
    C: InverseL2 = 1.0  # noqa: N815


@_schema("baselines")
class BaselinesParams:
    """The bag-of-words references; each name is a `baseline@<name>` stage and a report row."""
    tfidf_logreg: TfidfParams
    nbsvm: NbsvmParams


@_schema("incoming")
class IncomingParams:
    """New labelled reviews (data/incoming, checked by the `intake` stage)."""

    use: Annotated[Literal["train", "report"], Field(
        description="'train' (added to the fit part of the training split) or 'report' "
                    "(checked and reported, not learned from)")] = "train"
    drift_p_value: Annotated[Float, Field(
        gt=0, lt=1, description="between 0 and 1 (a test's significance level)")] = 0.01


@_schema("hybrid")
class HybridParams:
    recurrent: Annotated[Str, Field(min_length=1, description="an architecture's name")] = (
        "attention_rnn")
    C: InverseL2 = 1.0  # noqa: N815
    candidate: Bool = True  # competes for champion beside the architectures


@_schema("report")
class ReportParams:
    registered_model: Annotated[Str, Field(min_length=1, description="a non-empty name")] = (
        "imdb-sentiment")
    promotion_margin: Annotated[Float, Field(
        ge=0, lt=1, description="between 0 and 1 (an accuracy difference)")] = 0.0
    behavior_thresholds: dict[Str, Float] = Field(
        default_factory=lambda: dict.fromkeys(BEHAVIOR_TYPES, 0.0))
    behavior_dir_tolerance: Annotated[Float, Field(
        ge=0, lt=1, description="between 0 and 1 (a probability)")] = 0.01

    @model_validator(mode="after")
    def _one_rate_per_type(self) -> ReportParams:
        _check(set(self.behavior_thresholds) == set(BEHAVIOR_TYPES), "behavior_thresholds",
               f"must give exactly {', '.join(BEHAVIOR_TYPES)}")
        for kind, value in self.behavior_thresholds.items():
            _check(0 <= value <= 1, f"behavior_thresholds.{kind}",
                   "must be a pass rate between 0 and 1")
        return self


@_schema("pretrain")
class PretrainParams:
    architectures: tuple[Str, ...] = ()
    dim: Size = 64
    window: Size = 5
    min_count: Size = 2
    epochs: Size = 5


@_schema("lessons")
class LessonsParams:
    """The two lessons: accuracy against review length, and gradients against distance."""

    maxlens: Annotated[tuple[Size, ...], Field(
        min_length=1, description="a list of at least one length >= 1")]
    max_epochs: Size
    sequence_architectures: tuple[Str, ...]
    gradient_architectures: tuple[Str, ...]
    gradient_reviews: Size
    gradient_timesteps: Annotated[Int, Field(ge=2)]


@_schema("tune")
class TuneParams:
    """A study's budget: trials, not seconds, so the same params give the same trials."""

    n_trials: Annotated[Int, Field(ge=0, description=">= 0 (0: no tuning)")]
    pruner: Literal[PRUNERS] = "median"
    startup_trials: Annotated[Int, Field(ge=0)] = 1
    warmup_epochs: Annotated[Int, Field(ge=0)] = 1
    max_minutes: Annotated[Float | None, Field(
        gt=0, description="> 0, or null for no time guard")] = None


@_schema("search_spaces")
class SearchRange:
    """One searched hyperparameter: a numeric range (int when both ends are ints) or choices."""

    low: Number = None
    high: Number = None
    log: Bool = False
    choices: tuple | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchRange:
        if self.choices is not None:
            _check(self.low is None and self.high is None and not self.log, "",
                   "takes choices alone, without low/high/log")
            _check(len(self.choices) > 0, "choices", "must be a non-empty list")
            return self
        for end in ("low", "high"):
            if getattr(self, end) is None:
                raise Missing(end)
        _check(self.low <= self.high, "", f"has low ({self.low}) > high ({self.high})")
        _check(not self.log or self.low > 0, "", "needs low > 0 with log: true")
        return self

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return self.low <= value <= self.high

    def as_dict(self) -> dict:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


@_schema("models.{architecture}")
class ModelParams:
    """One architecture's section: training settings plus its builder's keyword arguments."""

    architecture: Str
    learning_rate: Annotated[Float, Field(gt=0)]
    batch_size: Size
    hyperparameters: dict[Str, Any]
    optimizer: Literal[OPTIMIZERS] = "adam"

    @model_validator(mode="after")
    def _builder_arguments(self) -> ModelParams:
        from pipeline.core.models import ARCHITECTURES

        _check(self.architecture in ARCHITECTURES, "",
               f"is not a known architecture; known: {', '.join(ARCHITECTURES)}")
        for name, value in self.hyperparameters.items():
            _check_hyperparameter(self.architecture, name, value)
        return self

    def as_dict(self) -> dict:
        """The flat form params.yaml uses: training keys and builder arguments side by side."""
        return {"learning_rate": self.learning_rate, "batch_size": self.batch_size,
                "optimizer": self.optimizer, **self.hyperparameters}

    def with_values(self, values: dict[str, Any]) -> ModelParams:
        """These params with some keys replaced (e.g. by a trial's or a study's best values)."""
        return model_params(self.architecture, {**self.as_dict(), **values})


def _known_architectures(names: tuple[str, ...]) -> tuple[str, ...]:
    from pipeline.core.models import ARCHITECTURES

    for name in names:
        _check(name in ARCHITECTURES, "",
               f"lists unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return names


@_schema("")
class Params:
    seed: Int
    download: DownloadParams
    validate: ValidateParams
    incoming: IncomingParams
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    baselines: BaselinesParams
    hybrid: HybridParams
    pretrain: PretrainParams
    report: ReportParams
    lessons: LessonsParams
    tune: TuneParams
    architectures: Annotated[tuple[Str, ...], AfterValidator(_known_architectures)]
    models: dict[Str, ModelParams]
    search_spaces: dict[Str, dict[Str, SearchRange]]

    @model_validator(mode="after")
    def _sections_agree(self) -> Params:
        for section in ("models", "search_spaces"):
            _check_covers(getattr(self, section), section, self.architectures)
        _check_lessons(self.lessons, self.prepare, self.architectures)
        _check_hybrid(self.hybrid, self.architectures)
        _check_pretrain(self)
        for architecture, space in self.search_spaces.items():
            _check_search_space(architecture, space)
        return self

    def model(self, architecture: str) -> ModelParams:
        if architecture not in self.models:
            raise ParamsError(
                f"unknown architecture {architecture!r}: params.yaml lists "
                f"{', '.join(self.architectures)}")
        return self.models[architecture]


# --- checks across keys ---------------------------------------------------------------------

def _check_covers(section: dict, name: str, architectures: tuple[str, ...]) -> None:
    """models and search_spaces hold one entry per listed architecture ({} searches nothing)."""
    for architecture in architectures:
        if architecture not in section:
            raise Missing(f"{name}.{architecture}")
    for architecture in section:
        _check(architecture in architectures, f"{name}.{architecture}",
               "is not in architectures; list it there or remove this section")


def _check_lessons(lessons: LessonsParams, prepare: PrepareParams,
                   architectures: tuple[str, ...]) -> None:
    # The lessons cut the prepared sequences, so they cannot ask for more tokens than exist.
    _check(max(lessons.maxlens) <= prepare.maxlen, "lessons.maxlens",
           f"must not exceed prepare.maxlen ({prepare.maxlen})")
    _check(lessons.gradient_timesteps <= prepare.maxlen, "lessons.gradient_timesteps",
           f"must not exceed prepare.maxlen ({prepare.maxlen})")
    for key in ("sequence_architectures", "gradient_architectures"):
        for name in getattr(lessons, key):
            _check(name in architectures, f"lessons.{key}",
                   f"lists {name!r}, which is not in architectures")


def _check_hybrid(hybrid: HybridParams, architectures: tuple[str, ...]) -> None:
    _check(hybrid.recurrent in architectures, "hybrid.recurrent",
           f"is {hybrid.recurrent!r}, which is not in architectures: name one of them")


def _check_pretrain(params: Params) -> None:
    """Each architecture that starts from the word vectors is listed, and its embedding has
    their width, in params.yaml and in every trial."""
    for name in params.pretrain.architectures:
        _check(name in params.architectures, "pretrain.architectures",
               f"lists {name!r}, which is not in architectures")
        width = params.models[name].hyperparameters.get("embedding_dim")
        _check(width == params.pretrain.dim, "pretrain.architectures",
               f"lists {name!r}, whose models.{name}.embedding_dim ({width}) is not "
               f"pretrain.dim ({params.pretrain.dim}): make them equal")
        _check("embedding_dim" not in params.search_spaces.get(name, {}),
               f"search_spaces.{name}.embedding_dim",
               f"is searched, but {name} starts from pretrain.dim-wide word vectors: drop it")


def _check_search_space(architecture: str, space: dict[str, SearchRange]) -> None:
    """Each searched key is one the architecture takes; named choices are known names."""
    from pipeline.core.models import RECURRENT_CELLS

    known_choices = {"optimizer": OPTIMIZERS, "cell": tuple(RECURRENT_CELLS)}
    for name, spec in space.items():
        key = f"search_spaces.{architecture}.{name}"
        _check(name in TRAINING_KEYS or name in _hyperparameter_types(architecture), key,
               _not_a_hyperparameter(architecture))
        known = known_choices.get(name)
        for choice in spec.choices or ():
            _check(known is None or choice in known, f"{key}.choices",
                   f"has unknown {name} {choice!r}; known: {', '.join(known or ())}")


def _check_hyperparameter(architecture: str, name: str, value: Any) -> None:
    _check(name in _hyperparameter_types(architecture), name, _not_a_hyperparameter(architecture))
    kind, adapter = _hyperparameter_types(architecture)[name]
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        raise Invalid(name, _explain(err.errors()[0], FieldInfo.from_annotation(kind))) from None


@functools.cache
def _hyperparameter_types(architecture: str) -> dict[str, tuple[Any, TypeAdapter]]:
    """Each builder argument's type, from its name and default, with its validator."""
    import inspect

    from pipeline.core.models import ARCHITECTURES, builder_arguments

    parameters = inspect.signature(ARCHITECTURES[architecture]).parameters
    kinds = {name: _hyperparameter_type(name, parameters[name].default)
             for name in builder_arguments(architecture)}
    return {name: (kind, TypeAdapter(kind)) for name, kind in kinds.items()}


def _hyperparameter_type(name: str, default: Any) -> Any:
    """A builder argument has the type of its default: sizes are ints >= 1, dropout a rate."""
    from pipeline.core.models import RECURRENT_CELLS

    if name == "cell":
        return Literal[tuple(RECURRENT_CELLS)]
    if isinstance(default, float):
        return Rate
    return Size if isinstance(default, int) else Any


def _not_a_hyperparameter(architecture: str) -> str:
    allowed = sorted(_hyperparameter_types(architecture))
    return (f"is not a hyperparameter of {architecture}; allowed: "
            f"{', '.join(TRAINING_KEYS)}, {', '.join(allowed)}")


# --- loading --------------------------------------------------------------------------------

def load_params(path: Path | str = PARAMS_FILE) -> Params:
    return parse_params(read_params(path))


def parse_params(raw: Any) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of sections")
    return Params(**_schema_fields(raw))


def model_params(architecture: str, section: Any) -> ModelParams:
    """One architecture's flat section (models.<arch>, or a tuning result), checked."""
    if not isinstance(section, dict):
        raise ParamsError(f"params.yaml: models.{architecture} must be a mapping of "
                          f"hyperparameters, got {section!r}")
    return ModelParams(**_split_model_section(architecture, section))


def _split_model_section(architecture: str, section: Any) -> Any:
    """params.yaml's flat models.<arch>: training keys beside builder arguments, split apart."""
    if not isinstance(section, dict):
        return section  # the schema says what it must be
    return {"architecture": architecture,
            **{key: value for key, value in section.items() if key in TRAINING_KEYS},
            "hyperparameters": {k: v for k, v in section.items() if k not in TRAINING_KEYS}}


def _schema_fields(raw: dict) -> dict:
    """params.yaml's layout as Params' fields: the sections of the listed architectures, in
    their order, each models.<arch> split; sections of architectures not listed are left out."""
    listed = raw.get("architectures")
    if listed is None:
        raise ParamsError("params.yaml: missing architectures")
    if not (isinstance(listed, list) and all(isinstance(name, str) for name in listed)):
        raise ParamsError(f"params.yaml: architectures must be a list of architecture names, "
                          f"got {listed!r}")
    fields = dict(raw)
    if isinstance(raw.get("models"), dict):
        fields["models"] = {name: _split_model_section(name, raw["models"][name])
                            for name in listed if name in raw["models"]}
    if isinstance(raw.get("search_spaces"), dict):
        fields["search_spaces"] = {name: raw["search_spaces"][name]
                                   for name in listed if name in raw["search_spaces"]}
    return fields


def read_params(path: Path | str = PARAMS_FILE) -> dict:
    """A params file as plain data; one that `extends` another (a path relative to it) is
    merged over that one's data, so the result is always a complete params mapping."""
    return _read_extended(Path(path), ())


def write_params(source: Path | str, target: Path | str) -> None:
    """Write `source`, merged over what it extends and checked, as one complete params file
    (DVC reads params.yaml as it is: `dvc repro` with params.small.yaml needs this)."""
    data = read_params(source)
    parse_params(data)
    Path(target).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def merged(base: dict, overrides: dict) -> dict:
    """`overrides` over `base`, mapping by mapping; any other value (a list too) replaces the
    base's. The order is the base's, a key it lacks placed after the key `overrides` lists
    before it (tune suggests a search space's keys in this order)."""
    order = list(base)
    for previous, key in zip([None, *overrides], overrides, strict=False):
        if key not in base:
            order.insert(order.index(previous) + 1 if previous is not None else 0, key)
    return {key: _merged_value(base.get(key), overrides[key]) if key in overrides else base[key]
            for key in order}


def _merged_value(old: Any, new: Any) -> Any:
    return merged(old, new) if isinstance(old, dict) and isinstance(new, dict) else new


def _read_extended(path: Path, extended_by: tuple[Path, ...]) -> dict:
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    overrides = {key: value for key, value in raw.items() if key != "extends"}
    if not isinstance(raw["extends"], str):
        raise ParamsError(f"{path}: extends must be the path of a params file, "
                          f"got {raw['extends']!r}")
    base = path.parent / raw["extends"]
    if base.resolve() in (path.resolve(), *extended_by):
        raise ParamsError(f"{path}: extends {raw['extends']}, which extends it back; a file "
                          "can only extend a complete params file (e.g. params.yaml)")
    return merged(_read_extended(base, (*extended_by, path.resolve())), overrides)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project root") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ParamsError(f"{path} is not valid YAML{where}: {problem}; fix the file there "
                          "(e.g. an unclosed bracket or quote, or a tab used to indent)") from None


# --- pydantic's errors as one line naming the key -------------------------------------------

TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false",
              "string": "a string", "tuple": "a list", "list": "a list",
              "dict": "a mapping of keys", "dataclass": "a mapping of keys"}
BOUNDS = {"greater_than": "> {gt:g}", "greater_than_equal": ">= {ge:g}",
          "less_than": "< {lt:g}", "less_than_equal": "<= {le:g}"}
CONSTRAINTS = (*BOUNDS, "literal_error", "string_pattern_mismatch", "string_too_short",
               "string_too_long", "too_short", "too_long")
UNKNOWN_KEYS = ("unexpected_keyword_argument", "extra_forbidden", "unexpected_positional_argument")


def _message(err: ValidationError, cls: type, section: str) -> str:
    """The first error as "params.yaml: <key> <what it must be>, got <value>"."""
    errors = err.errors()
    first = errors[0]
    loc = _field_names(cls, first["loc"])
    if first["type"] in UNKNOWN_KEYS:
        return _unknown_keys(errors, cls, section, loc[:-1])
    if first["type"] in ("missing", "missing_argument"):
        return f"params.yaml: missing {_key(section, loc)}"
    if first["type"] == "value_error":  # raised by a check in the schema
        problem = first["ctx"]["error"]
        key = _key(section, (*loc, getattr(problem, "key", "")))
        return f"params.yaml: missing {key}" if isinstance(problem, Missing) \
            else f"params.yaml: {key} {problem}"
    return f"params.yaml: {_key(section, loc)} {_explain(first, _declared(cls, loc))}"


def _unknown_keys(errors: list[dict], cls: type, section: str, parent: tuple) -> str:
    """Every unknown key of one mapping, and the keys it takes."""
    unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] in UNKNOWN_KEYS
                     and _field_names(cls, e["loc"])[:-1] == parent)
    declared = _declared(cls, parent)
    known = getattr(declared.annotation if declared else None, "__dataclass_fields__", {})
    return (f"params.yaml: {_key(section, parent) or 'the top level'} has unknown keys "
            f"{unknown}; known: {', '.join(known)}")


def _explain(error: dict, field: FieldInfo | None) -> str:
    """What a value must be: the field's description, else the constraint or type it broke."""
    kind, value = error["type"], error["input"]
    if kind in CONSTRAINTS:
        wanted = field.description if field and field.description else _constraint(error, field)
        return f"must be {wanted}, got {value!r}"
    if kind.split("_")[0] in TYPE_NAMES:
        nullable = field is not None and type(None) in typing.get_args(field.annotation)
        wanted = TYPE_NAMES[kind.split("_")[0]] + (" or null" if nullable else "")
        return f"must be {wanted}, got {value!r} ({type(value).__name__})"
    return f"is invalid ({error['msg']}), got {value!r}"


def _constraint(error: dict, field: FieldInfo | None) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in BOUNDS:
        return BOUNDS[kind].format(**ctx)
    if kind == "literal_error" and field and typing.get_origin(field.annotation) is Literal:
        return f"one of {', '.join(map(str, typing.get_args(field.annotation)))}"
    return error["msg"].removeprefix("Input should be ").removeprefix("String should ")


def _field_names(cls: type, loc: tuple) -> tuple:
    """`loc` with a positional argument's index replaced by its field's name."""
    if loc and isinstance(loc[0], int) and loc[0] < len(cls.__dataclass_fields__):
        return (list(cls.__dataclass_fields__)[loc[0]], *loc[1:])
    return tuple(loc)


def _declared(cls: type, loc: tuple) -> FieldInfo | None:
    """The field declared at `loc` below `cls`, through sections and mapping values."""
    field = FieldInfo.from_annotation(cls)
    for part in loc:
        fields = getattr(field.annotation, "__pydantic_fields__", {})
        if part in fields:
            field = fields[part]
        elif typing.get_origin(field.annotation) is dict:
            field = FieldInfo.from_annotation(typing.get_args(field.annotation)[1])
        else:
            return None
    return field


def _key(section: str, loc: tuple) -> str:
    return ".".join(str(part) for part in (section, *loc) if part != "")
