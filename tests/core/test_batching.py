import numpy as np

from pipeline.core.batching import (
    bucket_batches,
    left_align,
    make_dataset,
    predict_proba,
    review_lengths,
)
from pipeline.core.models import build_model
from pipeline.prepare import pad


def padded_reviews(n=57, maxlen=40, seed=0):
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(2, 30, size=rng.integers(1, 60)) for _ in range(n)]
    return pad(sequences, maxlen)


def test_every_review_lands_in_exactly_one_batch_wide_enough_for_it():
    x = padded_reviews()
    lengths = review_lengths(x)
    batches = bucket_batches(lengths, batch_size=8, bucket_width=10, maxlen=40,
                             rng=np.random.default_rng(0))
    rows = np.concatenate([r for r, _ in batches])
    assert sorted(rows.tolist()) == list(range(len(x)))
    for r, width in batches:
        assert len(r) <= 8 and width % 10 == 0 and width <= 40
        assert (lengths[r] <= width).all()


def test_shuffling_is_seeded():
    lengths = review_lengths(padded_reviews())
    first = bucket_batches(lengths, 8, 10, 40, rng=np.random.default_rng(3))
    again = bucket_batches(lengths, 8, 10, 40, rng=np.random.default_rng(3))
    assert all((a[0] == b[0]).all() for a, b in zip(first, again, strict=True))


def test_dataset_batches_are_cut_but_keep_every_token():
    x = padded_reviews()
    y = np.arange(len(x)) % 2
    seen = 0
    for tokens, labels in make_dataset(x, y, batch_size=8, bucket_width=10, seed=1):
        assert tokens.shape[1] in (10, 20, 30, 40) and len(tokens) == len(labels)
        seen += int((tokens.numpy() != 0).sum())
    assert seen == int((x != 0).sum())


def test_bucketed_prediction_equals_full_width_prediction_in_the_same_order():
    x = padded_reviews()
    model = build_model("gru", 30, 40, embedding_dim=4, units=4, dropout=0.0)
    full = model.predict(x, verbose=0).reshape(-1)
    bucketed = predict_proba(model, x, batch_size=16, bucket_width=10)
    np.testing.assert_allclose(bucketed, full, atol=1e-5)


def test_fixed_width_prediction_keeps_every_row_in_order():
    x = padded_reviews(n=37)  # 16 + 16 + 5: the last batch is short
    model = build_model("conv1d", 30, 40, embedding_dim=4, filters=4, kernel_size=3, units=4)
    full = model.predict(x, verbose=0).reshape(-1)
    np.testing.assert_allclose(predict_proba(model, x, batch_size=16, bucket_width=10), full,
                               atol=1e-5)


def test_training_datasets_prefetch_without_autotuning():
    # closing an autotuned iterator can stall for seconds (batching._prefetched)
    x, y = padded_reviews(), np.zeros(57)
    for bucket_width in (0, 10):
        dataset = make_dataset(x, y, batch_size=8, bucket_width=bucket_width, seed=1)
        assert dataset.options().autotune.enabled is False
        assert len(list(dataset)) == 8


def test_left_align_keeps_each_reviews_tokens_in_order():
    x = padded_reviews(n=20, maxlen=12)
    aligned = left_align(x)
    lengths = review_lengths(x)
    for row, original, n in zip(aligned, x, lengths, strict=True):
        assert row[:n].tolist() == original[original != 0].tolist()
        assert (row[n:] == 0).all()


def test_left_aligned_batches_give_the_prepadded_prediction_for_every_masked_model():
    # cuDNN needs padding after the review; a masked model must not care where it is
    x = padded_reviews(n=24, maxlen=30)
    for arch in ("gru", "lstm", "bidirectional_rnn", "attention_rnn", "jordan_rnn"):
        model = build_model(arch, 30, 30, embedding_dim=4, units=4, dropout=0.0)
        np.testing.assert_allclose(model.predict(left_align(x), verbose=0),
                                   model.predict(x, verbose=0), atol=1e-5, err_msg=arch)


def test_all_batches_but_one_are_full():
    lengths = review_lengths(padded_reviews(n=101, maxlen=40))
    batches = bucket_batches(lengths, 8, 10, 40, rng=np.random.default_rng(0))
    sizes = sorted(len(rows) for rows, _ in batches)
    assert sizes[1:] == [8] * (len(sizes) - 1) and sizes[0] == 101 % 8
    assert len({(len(rows), width) for rows, width in batches}) <= 5  # 4 widths + the short one
