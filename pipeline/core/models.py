"""The ten architectures: one builder each, and one registry that maps a params.yaml name to it.

Every model takes pre-padded token ids (0 = padding) and returns P(positive review).
Recurrent models mask the padding, so it never reaches their state, and accept any sequence
length, which lets training cut batches to their longest review. Models whose layers cannot
mask (Flatten, Conv1D) take exactly `maxlen` tokens.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import keras
from keras import layers

RECURRENT_CELLS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


@keras.saving.register_keras_serializable(package="pipeline")
class JordanCell(layers.Layer):
    """Jordan network cell: the previous *output*, not the hidden state, feeds the next step.

    h_t = tanh(x_t W + y_{t-1} U + b);  y_t = tanh(h_t V + c);  the carried state is y_t.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.hidden = layers.Dense(self.units, activation="tanh", name="hidden")
        self.hidden.build((input_shape[0], input_shape[-1] + self.units))
        self.output_layer = layers.Dense(self.units, activation="tanh", name="output",
                                         kernel_initializer="orthogonal")
        self.output_layer.build((input_shape[0], self.units))
        # The recurrent path y -> h -> y starts orthogonal, as SimpleRNN's recurrent kernel does,
        # so a gradient neither fades nor grows along it before training shapes it.
        recurrent = keras.initializers.Orthogonal()((self.units, self.units))
        self.hidden.kernel.assign(keras.ops.concatenate(
            [self.hidden.kernel[:input_shape[-1]], recurrent], axis=0))

    def call(self, inputs, states):
        previous_output = states[0] if isinstance(states, list | tuple) else states
        hidden = self.hidden(keras.ops.concatenate([inputs, previous_output], axis=-1))
        output = self.output_layer(hidden)
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="pipeline")
class AttentionPooling(layers.Layer):
    """Learned attention over timesteps: softmax(score(h_t)) weighted sum; padding gets 0 weight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.score = layers.Dense(1, name="score")
        self.score.build(input_shape)

    def call(self, sequence, mask=None):
        scores = keras.ops.squeeze(self.score(sequence), axis=-1)
        if mask is not None:
            scores = keras.ops.where(mask, scores, keras.ops.full_like(scores, -1e9))
        weights = keras.ops.softmax(scores, axis=-1)
        return keras.ops.sum(sequence * keras.ops.expand_dims(weights, -1), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def _tokens(vocab_size: int, embedding_dim: int, maxlen: int | None):
    """Token-id input and its embedding; masked (and any length) when maxlen is None."""
    tokens = keras.Input(shape=(maxlen,), dtype="int32", name="tokens")
    embedded = layers.Embedding(vocab_size, embedding_dim, mask_zero=maxlen is None,
                                name="embedding")(tokens)
    return tokens, embedded


def _classifier(tokens, features, name: str) -> keras.Model:
    probability = layers.Dense(1, activation="sigmoid", name="probability")(features)
    return keras.Model(tokens, probability, name=name)


def build_dense(vocab_size, maxlen, embedding_dim=16, units=32, dropout=0.5):
    tokens, x = _tokens(vocab_size, embedding_dim, maxlen)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(units, activation="relu")(x)
    return _classifier(tokens, x, "dense")


def build_simple_rnn(vocab_size, maxlen, embedding_dim=64, units=64, dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, None)
    x = layers.SimpleRNN(units, dropout=dropout)(x)
    return _classifier(tokens, x, "simple_rnn")


def build_stacked_rnn(vocab_size, maxlen, embedding_dim=64, units=64, dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, None)
    x = layers.SimpleRNN(units, dropout=dropout, return_sequences=True)(x)
    x = layers.SimpleRNN(units, dropout=dropout)(x)
    return _classifier(tokens, x, "stacked_rnn")


def build_bidirectional_rnn(vocab_size, maxlen, embedding_dim=64, units=32, cell="gru",
                            dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, None)
    x = layers.Bidirectional(_recurrent(cell)(units, dropout=dropout))(x)
    return _classifier(tokens, x, "bidirectional_rnn")


def build_lstm(vocab_size, maxlen, embedding_dim=64, units=64, dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, None)
    x = layers.LSTM(units, dropout=dropout)(x)
    return _classifier(tokens, x, "lstm")


def build_gru(vocab_size, maxlen, embedding_dim=64, units=64, dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, None)
    x = layers.GRU(units, dropout=dropout)(x)
    return _classifier(tokens, x, "gru")


def build_conv1d(vocab_size, maxlen, embedding_dim=64, filters=128, kernel_size=5, units=64,
                 dropout=0.5):
    tokens, x = _tokens(vocab_size, embedding_dim, maxlen)
    x = layers.Conv1D(filters, kernel_size, activation="relu")(x)
    x = layers.GlobalMaxPooling1D()(x)  # strongest n-gram detector response anywhere in the review
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(units, activation="relu")(x)
    return _classifier(tokens, x, "conv1d")


def build_conv_rnn(vocab_size, maxlen, embedding_dim=64, filters=64, kernel_size=5, pool_size=4,
                   cell="gru", units=64, dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, maxlen)
    x = layers.Conv1D(filters, kernel_size, activation="relu")(x)
    x = layers.MaxPooling1D(pool_size)(x)  # the recurrent layer then runs pool_size x fewer steps
    x = _recurrent(cell)(units, dropout=dropout)(x)
    return _classifier(tokens, x, "conv_rnn")


def build_attention_rnn(vocab_size, maxlen, embedding_dim=64, units=64, cell="gru", dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, None)
    x = _recurrent(cell)(units, dropout=dropout, return_sequences=True)(x)
    x = AttentionPooling(name="attention")(x)
    return _classifier(tokens, x, "attention_rnn")


def build_jordan_rnn(vocab_size, maxlen, embedding_dim=64, units=64, dropout=0.2):
    tokens, x = _tokens(vocab_size, embedding_dim, None)
    x = layers.Dropout(dropout)(x)
    x = layers.RNN(JordanCell(units), name="jordan")(x)
    return _classifier(tokens, x, "jordan_rnn")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "dense": build_dense,
    "simple_rnn": build_simple_rnn,
    "stacked_rnn": build_stacked_rnn,
    "bidirectional_rnn": build_bidirectional_rnn,
    "lstm": build_lstm,
    "gru": build_gru,
    "conv1d": build_conv1d,
    "conv_rnn": build_conv_rnn,
    "attention_rnn": build_attention_rnn,
    "jordan_rnn": build_jordan_rnn,
}


def _recurrent(cell: str):
    if cell not in RECURRENT_CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(RECURRENT_CELLS)}")
    return RECURRENT_CELLS[cell]


def builder_arguments(architecture: str) -> set[str]:
    """The hyperparameters an architecture's builder accepts (what params.yaml may set)."""
    parameters = inspect.signature(ARCHITECTURES[architecture]).parameters
    return set(parameters) - {"vocab_size", "maxlen"}


def build_model(architecture: str, vocab_size: int, maxlen: int, **hyperparameters) -> keras.Model:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; "
                         f"choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](vocab_size, maxlen, **hyperparameters)


def accepts_any_length(model: keras.Model) -> bool:
    return model.input_shape[1] is None
