import keras
import numpy as np
import pytest

from pipeline.core.models import ARCHITECTURES, JordanCell, accepts_any_length, build_model

VOCAB, MAXLEN = 50, 24


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return {name: build_model(name, VOCAB, MAXLEN) for name in ARCHITECTURES}


def tokens(n=3, length=10, seed=0):
    return np.random.default_rng(seed).integers(2, VOCAB, size=(n, length)).astype("int32")


def test_registry_holds_the_ten_course_architectures():
    assert set(ARCHITECTURES) == {
        "dense", "simple_rnn", "stacked_rnn", "bidirectional_rnn", "lstm", "gru", "conv1d",
        "conv_rnn", "attention_rnn", "jordan_rnn"}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_outputs_one_probability_per_review(models, name):
    x = np.concatenate([np.zeros((3, MAXLEN - 10), "int32"), tokens()], axis=1)
    probability = models[name].predict(x, verbose=0)
    assert probability.shape == (3, 1)
    assert ((probability > 0) & (probability < 1)).all()
    assert models[name].layers[-1].name == "probability"


RECURRENT = [n for n in ARCHITECTURES if n not in ("dense", "conv1d", "conv_rnn")]


@pytest.mark.parametrize("name", RECURRENT)
def test_padding_does_not_change_a_recurrent_prediction(models, name):
    assert accepts_any_length(models[name])
    x = tokens()
    padded = np.concatenate([np.zeros((3, 30), "int32"), x], axis=1)
    np.testing.assert_allclose(models[name].predict(x, verbose=0),
                               models[name].predict(padded, verbose=0), atol=1e-6)


@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_prediction_depends_on_the_words(models, name):
    a, b = models[name].predict(tokens(seed=1), verbose=0), models[name].predict(tokens(seed=2),
                                                                               verbose=0)
    assert not np.allclose(a, b)


def test_fixed_length_models_take_exactly_maxlen_tokens(models):
    for name in ("dense", "conv1d", "conv_rnn"):
        assert models[name].input_shape == (None, MAXLEN)


def test_jordan_cell_carries_its_output_as_state():
    cell = JordanCell(4)
    x = np.ones((2, 3), "float32")
    previous = np.full((2, 4), 0.5, "float32")
    output, [state] = cell(x, [previous])
    np.testing.assert_array_equal(output, state)
    other_output, _ = cell(x, [np.zeros((2, 4), "float32")])
    assert not np.allclose(output, other_output)  # the previous output feeds the update


def test_unknown_architecture_names_the_choices():
    with pytest.raises(ValueError, match="unknown architecture 'mlp'.*gru"):
        build_model("mlp", VOCAB, MAXLEN)


def test_unknown_cell_is_named():
    with pytest.raises(ValueError, match="unknown cell 'rnn'"):
        build_model("attention_rnn", VOCAB, MAXLEN, cell="rnn")


def test_saved_model_round_trips_with_custom_layers(models, tmp_path):
    for name in ("jordan_rnn", "attention_rnn"):
        models[name].save(tmp_path / f"{name}.keras")
        loaded = keras.models.load_model(tmp_path / f"{name}.keras")
        np.testing.assert_allclose(loaded.predict(tokens(), verbose=0),
                                   models[name].predict(tokens(), verbose=0), atol=1e-6)
