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
    def keys(tree, prefix=""):
        if isinstance(tree, dict):
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
