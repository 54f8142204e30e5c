import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline.core.config import (
    ParamsError,
    load_params,
    merged,
    parse_params,
    read_params,
    write_params,
)

ROOT = Path(__file__).resolve().parents[2]


def raw_params(name: str = "params.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["params.yaml", "params.small.yaml"])
def test_shipped_params_are_valid_and_cover_ten_architectures(name):
    params = load_params(ROOT / name)
    assert len(params.architectures) == 10
    assert set(params.models) == set(params.architectures)


def test_small_params_hold_only_what_differs_from_the_real_ones():
    """Every value params.small.yaml gives is new or changed: none repeats params.yaml's."""
    def repeated(small, real, prefix=""):
        for key, value in small.items():
            if isinstance(value, dict) and isinstance(real.get(key), dict):
                yield from repeated(value, real[key], f"{prefix}{key}.")
            elif key in real and real[key] == value:
                yield f"{prefix}{key}"

    small = raw_params("params.small.yaml")
    assert small.pop("extends") == "params.yaml"
    assert list(repeated(small, raw_params())) == []


def test_small_params_load_as_the_real_ones_with_the_overrides_merged_in():
    small, real = load_params(ROOT / "params.small.yaml"), load_params(ROOT / "params.yaml")
    overrides = raw_params("params.small.yaml")
    del overrides["extends"]
    assert small == parse_params(merged(raw_params(), overrides))
    assert (small.train.max_epochs, small.prepare.maxlen) == (2, 100)  # given
    assert small.train.clipnorm == real.train.clipnorm == 1.0  # inherited
    assert small.model("gru").hyperparameters["dropout"] == real.model("gru").hyperparameters[
        "dropout"]
    range_ = small.search_spaces["dense"]["learning_rate"]  # low, high given; log inherited
    assert (range_.low, range_.high, range_.log) == (0.001, 0.01, True)
    for architecture, space in overrides["search_spaces"].items():  # tune suggests in this order
        assert list(small.search_spaces[architecture]) == list(space)


def test_merge_goes_mapping_by_mapping_and_keeps_the_base_order():
    base = {"a": 1, "b": {"x": 1, "y": [1, 2]}, "c": 3}
    result = merged(base, {"b": {"y": [3], "new": 0}, "d": 4, "a": 5})
    assert result == {"a": 5, "b": {"x": 1, "y": [3], "new": 0}, "c": 3, "d": 4}
    assert list(result) == ["a", "b", "d", "c"] and list(result["b"]) == ["x", "y", "new"]
    assert base == {"a": 1, "b": {"x": 1, "y": [1, 2]}, "c": 3}  # not changed in place


def test_a_key_the_base_lacks_goes_after_the_key_listed_before_it():
    result = merged({"lr": 1, "units": 2}, {"lr": 1, "batch": 3, "units": 2, "cell": 4})
    assert list(result) == ["lr", "batch", "units", "cell"]
    assert list(merged({"lr": 1}, {"first": 0, "lr": 2})) == ["first", "lr"]


def test_a_file_that_extends_itself_or_a_missing_file_is_named(tmp_path):
    (tmp_path / "params.yaml").write_text("extends: params.yaml\nseed: 1\n")
    with pytest.raises(ParamsError, match="extends params.yaml, which extends it back"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "small.yaml").write_text("extends: nowhere.yaml\nseed: 1\n")
    with pytest.raises(ParamsError, match=r"nowhere.yaml not found"):
        load_params(tmp_path / "small.yaml")


def test_write_params_gives_dvc_one_complete_file(tmp_path):
    write_params(ROOT / "params.small.yaml", tmp_path / "params.yaml")
    written = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert "extends" not in written and written == read_params(ROOT / "params.small.yaml")
    assert load_params(tmp_path / "params.yaml") == load_params(ROOT / "params.small.yaml")


def test_unknown_keys_are_forbidden_in_every_section_and_at_the_top():
    raw = raw_params()
    raw["train"]["max_epoch"] = 3
    with pytest.raises(ParamsError, match=r"train has unknown keys \['max_epoch'\]; known: "
                                          r"max_epochs"):
        parse_params(raw)
    raw = raw_params()
    raw["sead"] = 1
    with pytest.raises(ParamsError, match=r"top level has unknown keys \['sead'\]"):
        parse_params(raw)


def test_params_are_frozen_and_replace_checks_the_new_values():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.train.max_epochs = 9
    assert dataclasses.replace(params.train, max_epochs=9).max_epochs == 9
    with pytest.raises(ParamsError, match=r"train\.max_epochs must be >= 1, got 0"):
        dataclasses.replace(params.train, max_epochs=0)


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


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw["pretrain"].update(architectures=["rnn9"]),
     r"pretrain.architectures.*lists 'rnn9', which is not in architectures"),
    (lambda raw: raw["pretrain"].update(dim=32, architectures=["attention_rnn"]),
     r"models.attention_rnn.embedding_dim \(64\) is not pretrain.dim \(32\): make them equal"),
    (lambda raw: (raw["pretrain"].update(architectures=["attention_rnn"]),
                  raw["search_spaces"]["attention_rnn"].update(
                      embedding_dim={"choices": [32, 64]})),
     r"search_spaces.attention_rnn.embedding_dim.*starts from pretrain.dim-wide word vectors"),
    (lambda raw: raw["hybrid"].update(recurrent="rnn9"),
     r"hybrid.recurrent.*'rnn9', which is not in architectures"),
])
def test_pretrain_and_hybrid_must_agree_with_the_architectures(change, message):
    raw = raw_params()
    change(raw)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)
