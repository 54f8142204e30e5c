import keras
import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import PrepareParams
from pipeline.core.models import ARCHITECTURES, build_model
from pipeline.prepare import encode, learn_vocabulary, pad
from pipeline.serving.text_model import ClipAndPad, ReviewSentimentModel, predict_texts, text_model

TEXTS = ["A great film, great cast.<br />Loved it!", "awful", "",
         "the plot was dull and the film too long to sit through " * 3]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_clip_and_pad_matches_prepare(padding, truncating):
    sequences = [np.array(s) for s in ([5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8], [], [9])]
    post_padded = pad(sequences, maxlen=8, padding="post", truncating="post")
    layer = ClipAndPad(5, padding, truncating)
    expected = pad(sequences, maxlen=5, padding=padding, truncating=truncating)
    np.testing.assert_array_equal(np.asarray(layer(post_padded)), expected)


def test_variable_width_is_the_longest_review_up_to_maxlen():
    sequences = [np.array(s) for s in ([5, 6, 7], [1, 2], [])]
    post_padded = pad(sequences, maxlen=8, padding="post")
    out = np.asarray(ClipAndPad(5, fixed_width=False)(post_padded))
    np.testing.assert_array_equal(out, pad(sequences, maxlen=3))
    long = pad([np.arange(1, 9)], maxlen=8)
    assert np.asarray(ClipAndPad(5, fixed_width=False)(long)).tolist() == [[4, 5, 6, 7, 8]]


@pytest.fixture(scope="module")
def vocabulary():
    return learn_vocabulary(TEXTS, vocab_size=40)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_every_architecture_scores_raw_text_as_on_prepared_arrays_after_a_file_round_trip(
        vocabulary, architecture, tmp_path):
    # the end-to-end test trains only some architectures; this covers each one's custom layers,
    # its save and load, and the padding the text model picks for it
    prepare = PrepareParams(val_fraction=0.2, vocab_size=40, maxlen=12)
    core = build_model(architecture, 40, 12)
    expected = core.predict(pad(encode(TEXTS, vocabulary), 12), verbose=0).reshape(-1)
    text_model(core, vocabulary, prepare).save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(predict_texts(loaded, TEXTS), expected, atol=1e-6)


def test_pyfunc_wrapper_takes_a_dataframe_of_reviews(vocabulary, tmp_path):
    prepare = PrepareParams(val_fraction=0.2, vocab_size=40, maxlen=12)
    model = text_model(build_model("gru", 40, 12, embedding_dim=4, units=4), vocabulary,
                       prepare)
    model.save(tmp_path / "m.keras")

    class Context:
        artifacts = {"keras_model": str(tmp_path / "m.keras")}

    wrapper = ReviewSentimentModel()
    wrapper.load_context(Context())
    reviews = [text for text in TEXTS if text]  # the pyfunc refuses a blank review (serving.py)
    answer = wrapper.predict(None, pd.DataFrame({"review": reviews}))
    np.testing.assert_allclose(answer.probability, predict_texts(model, reviews), atol=1e-6)
    assert predict_texts(model, []).shape == (0,)


def test_pyfunc_wrapper_never_pickles_the_keras_model(vocabulary, tmp_path):
    import pickle

    wrapper = ReviewSentimentModel()
    wrapper.model = "a loaded model"
    assert not hasattr(pickle.loads(pickle.dumps(wrapper)), "model")
