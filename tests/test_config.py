from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def raw_params(name: str = "params.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["params.yaml", "params.small.yaml"])
def test_shipped_params_are_valid_and_cover_ten_architectures(name):
    params = load_params(ROOT / name)
    assert len(params.architectures) == 10
    assert set(params.models) == set(params.architectures)


def test_small_params_have_the_same_keys_as_the_real_ones():
    """Same keys down to each architecture's search space, whose contents may differ: the real
    run searches near its defaults, the small one over choices that exercise every code path."""
    def keys(tree, prefix=""):
        if isinstance(tree, dict) and not prefix.startswith("search_spaces."):
            return {k for key, v in tree.items() for k in keys(v, f"{prefix}{key}.")} | {prefix}
        return {prefix}

    assert keys(raw_params("params.small.yaml")) == keys(raw_params())


def test_unknown_architecture_is_rejected_naming_the_choices():
    raw = raw_params()
    raw["architectures"].append("transformer")
    raw["models"]["transformer"] = {"learning_rate": 0.1, "batch_size": 8}
    with pytest.raises(ParamsError, match="unknown architecture 'transformer'.*gru"):
        parse_params(raw)


def test_unknown_hyperparameter_is_rejected_naming_the_key():
    raw = raw_params()
    raw["models"]["gru"]["unitz"] = 3
    with pytest.raises(ParamsError, match=r"models\.gru\.unitz"):
        parse_params(raw)


@pytest.mark.parametrize("section, key, value, message", [
    ("prepare", "val_fraction", 1.5, r"prepare\.val_fraction"),
    ("prepare", "padding", "middle", r"prepare\.padding"),
    ("download", "sha256", "abc", r"download\.sha256"),
    ("train", "max_epochs", 0, r"train\.max_epochs"),
    ("train", "jit_compile", "sometimes", r"train\.jit_compile"),
    ("train", "schedule", "linear", r"train\.schedule.*plateau, cosine"),
])
def test_invalid_values_fail_naming_the_key(section, key, value, message):
    raw = raw_params()
    raw[section][key] = value
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_missing_key_is_named():
    raw = raw_params()
    del raw["models"]["lstm"]["learning_rate"]
    with pytest.raises(ParamsError, match=r"missing models\.lstm\.learning_rate"):
        parse_params(raw)


def test_missing_params_file_says_where_to_run(tmp_path):
    with pytest.raises(ParamsError, match="project root"):
        load_params(tmp_path / "params.yaml")


def test_unknown_architecture_lookup_names_the_choices():
    with pytest.raises(ParamsError, match="unknown architecture 'rnn9'"):
        load_params(ROOT / "params.yaml").model("rnn9")


@pytest.mark.parametrize("section, key, value, message", [
    ("report", "behavior_thresholds", {"mft": 0.5, "inv": 0.9}, "must give exactly mft, inv, dir"),
    ("report", "behavior_thresholds", {"mft": 1.5, "inv": 0.9, "dir": 0.9},
     r"behavior_thresholds.mft must be a pass rate"),
    ("validate", "median_words", [200, 100], r"validate.median_words must be \[low, high\]"),
    ("validate", "duplicates_by", "fuzzy", "validate.duplicates_by must be 'exact' or"),
    ("validate", "balance_tolerance", 0.7, "validate.balance_tolerance must be between"),
])
def test_quality_gate_params_are_checked(section, key, value, message):
    raw = raw_params()
    raw[section][key] = value
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)
@pytest.mark.parametrize("key, value", [
    ("n_trials", -1), ("max_minutes", 0), ("warmup_epochs", -1), ("pruner", "sometimes"),
    ("startup_trials", -2),
])
def test_invalid_tune_settings_fail_naming_the_key(key, value):
    raw = raw_params()
    raw["tune"][key] = value
    with pytest.raises(ParamsError, match=rf"tune\.{key}"):
        parse_params(raw)


@pytest.mark.parametrize("name, spec, message", [
    ("units", {"low": 64, "high": 16}, r"search_spaces\.gru\.units has low \(64\) > high"),
    ("unitz", {"low": 1, "high": 2}, r"search_spaces\.gru\.unitz is not a hyperparameter"),
    ("optimizer", {"choices": ["adam", "adagrad"]}, r"unknown optimizer 'adagrad'"),
    ("units", {"low": "8", "high": 16}, r"search_spaces\.gru\.units\.low must be a number"),
    ("learning_rate", {"low": 0, "high": 0.1, "log": True}, r"needs low > 0"),
    ("dropout", {"low": 0.1}, r"missing search_spaces\.gru\.dropout\.high"),
    ("dropout", {"choices": []}, r"choices must be a non-empty list"),
    ("dropout", {"low": 0.1, "high": 0.2, "step": 0.1}, r"unknown keys \['step'\]"),
])
def test_invalid_search_spaces_fail_naming_the_key(name, spec, message):
    raw = raw_params()
    raw["search_spaces"]["gru"][name] = spec
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_search_space_ints_floats_and_choices_are_told_apart():
    space = load_params(ROOT / "params.yaml").search_spaces["conv1d"]
    assert (space["kernel_size"].low, space["kernel_size"].high) == (3, 7)
    assert space["learning_rate"].log and space["filters"].choices == (96, 128, 160)


def test_unknown_recurrent_cell_in_a_search_space_is_named():
    raw = raw_params()
    raw["search_spaces"]["attention_rnn"]["cell"] = {"choices": ["gru", "transformer"]}
    with pytest.raises(ParamsError, match=r"attention_rnn\.cell\.choices has unknown cell"):
        parse_params(raw)


def test_optimizer_is_an_optional_model_key_checked_by_name():
    raw = raw_params()
    assert parse_params(raw).model("gru").optimizer == "adam"
    raw["models"]["gru"]["optimizer"] = "rmsprop"
    assert parse_params(raw).model("gru").optimizer == "rmsprop"
    raw["models"]["gru"]["optimizer"] = "adagrad"
    with pytest.raises(ParamsError, match=r"models\.gru\.optimizer must be one of"):
        parse_params(raw)


def test_model_params_take_values_from_a_tuning_result_and_reject_unknown_keys():
    gru = load_params(ROOT / "params.yaml").model("gru")
    tuned = gru.with_values({"units": 80, "learning_rate": 0.003, "optimizer": "rmsprop"})
    assert tuned.hyperparameters["units"] == 80 and tuned.learning_rate == 0.003
    assert tuned.optimizer == "rmsprop" and tuned.batch_size == gru.batch_size
    with pytest.raises(ParamsError, match=r"models\.gru\.filters is not a hyperparameter"):
        gru.with_values({"filters": 3})
