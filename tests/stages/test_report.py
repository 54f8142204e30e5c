"""The report stage and what it builds on: pipeline.reporting.comparison,
pipeline.reporting.report_page, charts."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import PROJECT_ROOT
from scipy.stats import binom

from pipeline import UserError
from pipeline.core.config import EvaluateParams, read_params
from pipeline.core.metrics import score
from pipeline.core.paths import BASELINE_NAMES, EXPORT_DIR, SKLEARN_MODEL_FILE
from pipeline.report import (
    behavior_results,
    has_recurrent_layer,
    load_exported,
    load_inputs,
    predictor,
    write_report,
    write_word_order,
)
from pipeline.reporting.comparison import (
    add_paired_tests,
    against_strongest_baseline,
    best_architecture,
    check_paired,
    comparison_table,
    mcnemar,
    overfitting_table,
    timings_table,
    tuning_table,
    verdict,
)
from pipeline.reporting.promotion_page import behavior_table_markdown, gate_markdown
from pipeline.reporting.report_page import (
    overfitting_summary,
    paired_test_count,
    summary_markdown,
    to_html,
    to_markdown,
    word_order_markdown,
    word_order_summary,
)

ALPHA = 0.05
TFIDF, NBSVM = BASELINE_NAMES


def predictions_for(accuracy: float, n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.tile([0, 1], n // 2)
    right = rng.random(n) < accuracy
    confidence = rng.uniform(0.55, 0.95, n)
    probability = np.where(right == (label == 1), confidence, 1 - confidence)
    return pd.DataFrame({"id": np.arange(n), "label": label, "probability": probability})


def history(epochs: int, kept: int) -> pd.DataFrame:
    epoch = np.arange(1, epochs + 1)
    return pd.DataFrame({"epoch": epoch, "accuracy": 0.7 + 0.05 * epoch,
                         "val_accuracy": 0.75 + 0.01 * np.minimum(epoch, kept),
                         "loss": 0.6 - 0.1 * epoch,
                         "val_loss": 0.5 - 0.05 * np.minimum(epoch, kept)
                         + 0.08 * np.maximum(epoch - kept, 0)})


@pytest.fixture
def inputs():
    """What load_inputs reads, for two architectures and the two baselines."""
    predictions = {"gru": predictions_for(0.85, seed=1), "dense": predictions_for(0.75, seed=2),
                   TFIDF: predictions_for(0.9, seed=3), NBSVM: predictions_for(0.8, seed=9)}
    scored = {name: score(frame.label.to_numpy(), frame.probability.to_numpy(),
                          EvaluateParams(n_bootstrap=200), seed=0)
              for name, frame in predictions.items()}
    evaluation = {name: s for name, (s, _) in scored.items()}
    train = {"gru": {"parameters": 100, "epochs": 4, "best_epoch": 2, "best_val_accuracy": 0.86},
             "dense": {"parameters": 50, "epochs": 3, "best_epoch": 3, "best_val_accuracy": 0.77}}
    tuned = {"gru": {"tuned": True, "defaults_value": 0.84, "defaults_test_accuracy": 0.83,
                     "best_value": 0.86, "trials": {"complete": 3, "pruned": 1, "failed": 1}},
             "dense": {"tuned": False, "best_value": None, "trials": {}}}
    baselines = {name: {**evaluation.pop(name), "parameters": 1000, "features": 999,
                        "validation": {"accuracy": 0.9}} for name in BASELINE_NAMES}
    timings = {"train": {"gru": {"train_seconds": 30.0, "train_samples_per_second": 50.0},
                         "dense": {"train_seconds": 5.0, "train_samples_per_second": 200.0}},
               "evaluate": {"gru": {"predict_ms_per_review": 0.2},
                            "dense": {"predict_ms_per_review": 0.1}},
               "baselines": {name: {"train_seconds": 2.0, "train_samples_per_second": 150.0,
                                    "predict_ms_per_review": 0.05} for name in BASELINE_NAMES}}
    return {"train": train, "eval": evaluation, "baselines": baselines, "timings": timings,
            "tuned": tuned,
            "histories": {"gru": history(4, 2), "dense": history(3, 3)},
            "predictions": predictions,
            "curves": {curve: {name: c[curve] for name, (_, c) in scored.items()}
                       for curve in ("roc", "precision_recall", "calibration")}}


def full_table(inputs) -> pd.DataFrame:
    table = comparison_table(inputs["train"], inputs["eval"], inputs["baselines"])
    return add_paired_tests(table, inputs["predictions"], best_architecture(table),
                            0.5, ALPHA)


def test_table_is_sorted_by_test_accuracy_with_each_baseline_as_a_row(inputs):
    table = comparison_table(inputs["train"], inputs["eval"], inputs["baselines"])
    assert table.architecture.tolist() == [TFIDF, "gru", NBSVM, "dense"]
    assert table.accuracy.is_monotonic_decreasing
    assert table.is_baseline.tolist() == [True, False, True, False]
    assert table.loc[1, "parameters"] == 100 and table.loc[1, "test_reviews"] == 400
    assert not {"train_seconds", "train_samples_per_second",
                "predict_ms_per_review"} & set(table.columns)  # the machine's: timings.csv


def test_timings_table_follows_the_given_order(inputs):
    timings = timings_table(inputs["timings"]["train"], inputs["timings"]["evaluate"],
                            inputs["timings"]["baselines"], ["dense", TFIDF, "gru", NBSVM])
    assert timings.architecture.tolist() == ["dense", TFIDF, "gru", NBSVM]
    assert timings.is_baseline.tolist() == [False, True, False, True]
    assert timings.set_index("architecture").loc["gru", "train_seconds"] == 30.0
    assert timings.set_index("architecture").loc[NBSVM, "predict_ms_per_review"] == 0.05


def test_tuning_table_sets_the_defaults_against_the_tuned_values(inputs):
    table = tuning_table(inputs["tuned"], inputs["train"], inputs["eval"]).set_index(
        "architecture")
    gru, dense = table.loc["gru"], table.loc["dense"]
    assert gru.trials == 4 and gru.trials_pruned == 1  # failed trials do not count
    assert gru.val_gain_pts == 2.0
    test = inputs["eval"]["gru"]["accuracy"]
    assert gru.test_gain_pts == round(100 * (test - 0.83), 2)
    assert gru.val_test_gap_pts == round(100 * (0.86 - test), 2)
    assert not dense.tuned and dense.val_gain_pts == 0 and dense.test_gain_pts == 0


def test_a_stacked_model_is_a_row_without_epochs_that_can_be_the_best(inputs):
    predictions = {**inputs["predictions"], "hybrid": predictions_for(0.95, seed=7)}
    frame = predictions["hybrid"]
    scores, _ = score(frame.label.to_numpy(), frame.probability.to_numpy(),
                      EvaluateParams(n_bootstrap=200), seed=0)
    table = comparison_table(inputs["train"], inputs["eval"], inputs["baselines"],
                             {"hybrid": {**scores, "parameters": 1150}})
    assert table.architecture.tolist()[:2] == ["hybrid", TFIDF]
    row = table.iloc[0]
    assert not row.is_baseline and pd.isna(row.epochs) and row.parameters == 1150
    assert best_architecture(table) == "hybrid"
    markdown = to_markdown(add_paired_tests(table, predictions, "hybrid", 0.5, ALPHA), "hybrid")
    assert "\n| hybrid | " in markdown and " | 1,150 | — | +" in markdown


def test_the_gate_compares_the_candidate_with_the_strongest_baseline(inputs):
    table = full_table(inputs)
    dense = against_strongest_baseline(table, "dense", ALPHA)
    assert dense["baseline"] == TFIDF and dense["significantly_worse"]
    assert dense["points"] < 0 and dense["p_value"] < ALPHA and "significantly worse" in \
        dense["text"]
    same = against_strongest_baseline(table.assign(**{f"vs_{TFIDF}_p_value": 0.5}), "dense",
                                      ALPHA)
    assert not same["significantly_worse"]


def test_the_best_architecture_is_never_the_baseline(inputs):
    table = comparison_table(inputs["train"], inputs["eval"], inputs["baselines"])
    assert best_architecture(table) == "gru"


def test_mcnemar_matches_a_hand_computed_binomial_test():
    # 8 reviews only A gets right, 2 only B, 5 both, 3 neither
    a = np.array([1] * 8 + [0] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    b = np.array([0] * 8 + [1] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    result = mcnemar(a, b)
    assert (result["only_a"], result["only_b"]) == (8, 2)
    # two-sided: 2 * P(X <= 2) for X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert result["p_value"] == pytest.approx(2 * 56 / 1024)
    assert result["p_value"] == pytest.approx(2 * binom.cdf(2, 10, 0.5))
    assert mcnemar(b, a)["p_value"] == result["p_value"]


def test_mcnemar_without_disagreements_finds_no_difference():
    same = np.array([True, False, True])
    assert mcnemar(same, same) == {"only_a": 0, "only_b": 0, "p_value": 1.0}


def test_verdict_says_the_direction_only_when_significant():
    assert verdict(-2.345, 0.001, ALPHA) == "-2.3 pts, significantly worse (McNemar p=0.001)"
    assert verdict(1.0, 0.00001, ALPHA) == "+1.0 pts, significantly better (McNemar p<0.0001)"
    assert verdict(-0.4, 0.3, ALPHA).startswith("-0.4 pts, no significant difference")


def test_paired_tests_compare_with_each_baseline_and_the_best(inputs):
    table = full_table(inputs).set_index("architecture")
    assert pd.isna(table.loc["gru", "vs_best_text"])
    for baseline in BASELINE_NAMES:
        assert pd.isna(table.loc[baseline, f"vs_{baseline}_text"])
        gru_vs_base = table.loc["gru", f"vs_{baseline}_points"]
        assert gru_vs_base == pytest.approx(100 * (table.loc["gru", "accuracy"]
                                                   - table.loc[baseline, "accuracy"]), abs=0.01)
    assert table.loc[TFIDF, f"vs_{NBSVM}_p_value"] == table.loc[NBSVM, f"vs_{TFIDF}_p_value"]
    assert "significantly worse" in table.loc["dense", "vs_best_text"]
    assert table.loc["dense", "vs_best_p_value"] < ALPHA


def test_the_summary_measures_the_networks_against_the_strongest_baseline(inputs):
    stronger_nbsvm = {**inputs["predictions"], NBSVM: predictions_for(0.95, seed=4)}
    scored = {**inputs["baselines"], NBSVM: {
        **inputs["baselines"][NBSVM],
        **score(stronger_nbsvm[NBSVM].label.to_numpy(), stronger_nbsvm[NBSVM].probability
                .to_numpy(), EvaluateParams(n_bootstrap=200), seed=0)[0]}}
    table = comparison_table(inputs["train"], inputs["eval"], scored)
    table = add_paired_tests(table, stronger_nbsvm, "gru", 0.5, ALPHA)
    text = summary_markdown(table, "gru", ALPHA)
    assert text.startswith(f"The strongest baseline, `{NBSVM}`, NBSVM")
    assert "**0 are significantly better** than it, **2 significantly worse**" in text
    assert f"against `{NBSVM}`; " in text and f"against `{TFIDF}`." in text
    assert f"No architecture is significantly more accurate than `{NBSVM}`" in text


def test_the_method_notes_count_each_distinct_paired_test_once(inputs):
    table = full_table(inputs)
    pairs = {frozenset((row.architecture, reference))
             for row in table.itertuples()
             for reference in [*BASELINE_NAMES, "gru"]
             if not pd.isna(getattr(row, f"vs_{'best' if reference == 'gru' else reference}_text"))}
    assert paired_test_count(table) == len(pairs) == 6


def test_predictions_of_other_reviews_are_refused(inputs):
    shuffled = inputs["predictions"]["dense"].sample(frac=1, random_state=0)
    with pytest.raises(UserError, match="same test reviews"):
        check_paired({**inputs["predictions"], "dense": shuffled})


def test_overfitting_table_reports_the_kept_epoch_and_the_gaps(inputs):
    table = overfitting_table(inputs["histories"], inputs["train"]).set_index("architecture")
    gru = table.loc["gru"]
    assert gru.kept_epoch == 2 and gru.epochs == 4
    assert gru.kept_gap_pts == pytest.approx(100 * (0.8 - 0.77))
    assert gru.last_gap_pts == pytest.approx(100 * (0.9 - 0.77))
    assert gru.val_loss_rise == pytest.approx(0.16)
    assert table.loc["dense"].val_loss_rise == 0


def test_lesson_3_text_gives_the_numbers_of_the_runs_past_the_kept_epoch(inputs):
    table = overfitting_table(inputs["histories"], inputs["train"])
    text = overfitting_summary(table)
    assert text.startswith("1 of 2 architectures trained past the epoch they kept")
    assert "from 3.0 to 13.0 points" in text and "rose by 0.160" in text and "`gru`" in text
    no_overfitting = overfitting_summary(table[table.architecture == "dense"])
    assert no_overfitting.startswith("No architecture trained past")


def test_report_is_one_self_contained_html_page(inputs, tmp_path):
    table = full_table(inputs)
    overfitting = overfitting_table(inputs["histories"], inputs["train"])
    write_report(tmp_path, inputs, table, overfitting, "gru", ALPHA, 200, "\n## Champion\n")
    page = (tmp_path / "report.html").read_text()
    markdown = (tmp_path / "comparison.md").read_text()
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert len(images) >= 7 and all((tmp_path / image).is_file() for image in images)
    assert page.count('src="data:image/png;base64,') == len(images)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<table>" in page and "Lesson 3: overfitting" in page and "Champion" in page
    assert "significantly worse" in markdown and "vs TF-IDF + LR" in markdown
    assert "vs NBSVM" in markdown
    assert pd.read_csv(tmp_path / "comparison.csv").architecture.tolist()[0] == TFIDF
    timings = pd.read_csv(tmp_path / "timings.csv")
    assert timings.architecture.tolist() == [TFIDF, "gru", NBSVM, "dense"]  # as comparison.csv
    assert "Timings (this machine)" in page and "Timings (this machine)" not in markdown
    assert "timings.csv" in markdown
    assert "defaults against the tuned values" in markdown
    assert pd.read_csv(tmp_path / "tuning.csv").architecture.tolist() == ["gru", "dense"]


def test_the_report_tables_hold_no_machine_timings(inputs, tmp_path):
    """Two runs of the same params must give the same bytes: only timings.csv, report.html and
    the accuracy-vs-time chart may show what the machine measured."""
    table = full_table(inputs)
    overfitting = overfitting_table(inputs["histories"], inputs["train"])
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, factor in ((first, 1.0), (second, 3.0)):
        directory.mkdir()
        slower = {kind: {arch: {k: factor * v for k, v in values.items()}
                         for arch, values in by_arch.items()}
                  for kind, by_arch in inputs["timings"].items()}
        write_report(directory, {**inputs, "timings": slower}, table, overfitting, "gru", ALPHA,
                     200)
    for name in ("comparison.csv", "comparison.md", "overfitting.csv", "tuning.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "timings.csv").read_bytes() != (second / "timings.csv").read_bytes()


def test_a_missing_image_is_an_error(tmp_path):
    with pytest.raises(UserError, match="missing.png"):
        to_html("# t\n\n![x](missing.png)\n", tmp_path)


@pytest.mark.parametrize("params_file", ["params.yaml", "params.small.yaml"])
def test_dvc_plots_overlay_every_model(params_file):
    architectures = read_params(PROJECT_ROOT / params_file)["architectures"]
    plots = {name: spec for entry in yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
             ["plots"] for name, spec in entry.items()}
    for curve in ("roc", "precision_recall", "calibration"):
        assert set(plots[curve]["y"]) == {f"plots/{curve}/{name}.csv"
                                          for name in [*architectures, "hybrid", *BASELINE_NAMES]}
    assert set(plots["learning_curves"]["y"]) == {f"plots/history/{a}.csv"
                                                  for a in architectures}


def test_missing_inputs_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"missing metrics/train/gru.json.*run `dvc repro`"):
        load_inputs(("gru",))
    with pytest.raises(UserError, match=r"metrics/baseline/nbsvm.json"):
        load_inputs(("gru",))


def test_the_report_names_the_gate_that_held_the_candidate_back():
    decision = {"promoted": False, "reason": "...",
                "candidate_accuracy": 0.9, "champion_accuracy": 0.88, "margin": 0.002,
                "held_back_by": ["behavior"], "behavior_pass_rates": {"mft": 0.5, "inv": 0.95},
                "behavior_thresholds": {"mft": 0.55, "inv": 0.9}}
    per_test = pd.DataFrame({"type": ["mft"], "test": ["negated_pans"], "cases": [45],
                             "gru": [0.0], "dense": [0.25]})
    text = gate_markdown(decision, per_test)
    assert "| accuracy | 0.9000 | 0.8800 + 0.002 | yes |" in text
    assert "| behavior: mft pass rate | 0.500 | 0.55 | no |" in text
    assert "| behavior: inv pass rate | 0.950 | 0.9 | yes |" in text
    assert "Held back by the behavior gate." in text
    baseline = {"baseline": "nbsvm", "alpha": 0.05, "text": "-2.2 pts, significantly worse"}
    text = gate_markdown({**decision, "held_back_by": ["behavior", "baseline"],
                          "vs_strongest_baseline": baseline}, per_test)
    assert ("| baseline: vs nbsvm | -2.2 pts, significantly worse | not significantly worse "
            "(α=0.05) | no |") in text
    assert "Held back by the behavior and the baseline gates." in text
    assert "| type | test | cases | gru | dense |" in text
    assert "| mft | negated_pans | 45 | 0.00 | 0.25 |" in text
    assert "More accurate" not in text
    skipped = gate_markdown({**decision, "passed_over": {"dense": ["dir 0.930 < 0.95"]}},
                            per_test)
    assert "below the behavioral thresholds: `dense` (dir 0.930 < 0.95)." in skipped
    both = gate_markdown({**decision, "held_back_by": ["accuracy", "behavior"]}, per_test)
    assert "Held back by the accuracy and the behavior gates." in both
    assert "No gate held" in gate_markdown({**decision, "held_back_by": [], "promoted": True},
                                           per_test)
    already = {**decision, "held_back_by": [], "reason": "the candidate already is the champion"}
    assert "Not promoted: the candidate already is the champion." in gate_markdown(already,
                                                                                   per_test)


def word_order(rates: dict[str, tuple[float, float, float, float]],
               baselines=(TFIDF, NBSVM), recurrent=("gru",)) -> pd.DataFrame:
    """behavior.word_order_table's shape: per model, in the order given, its pass rates on
    negated praise, negated pans, all negation and "but" clauses."""
    columns = ("negated_praise", "negated_pans", "all_negation", "but_clauses")
    cases = dict(zip(columns, (45, 45, 90, 60), strict=True))
    return pd.DataFrame([{"model": model, "is_baseline": model in baselines,
                          "recurrent": model in recurrent,
                          **dict(zip(columns, values, strict=True)),
                          **{f"{c}_cases": n for c, n in cases.items()}}
                         for model, values in rates.items()])


def test_lesson_4_says_who_reads_negation_best_and_where_the_candidate_stands():
    table = word_order({"gru": (0.4, 0.2, 0.3, 0.6), TFIDF: (0.6, 0.4, 0.5, 0.5),
                        "dense": (0.9, 0.5, 0.7, 0.5), NBSVM: (0.2, 0.2, 0.2, 0.52)})
    text = word_order_summary(table, "gru")
    assert text.startswith("Of the 90 negation cases (negated praise and negated pans pooled), "
                           "`dense` passes the most: 70.0% (90.0% of the negated praise, "
                           "50.0% of the negated pans).")
    assert "A model that gave every review the same label would pass 50.0% (negated praise is " \
           "all negative, negated pans all positive); 2 of the 4 models pass fewer." in text
    assert f"The bag-of-words baselines pass 50.0% (`{TFIDF}`) and 20.0% (`{NBSVM}`)." in text
    assert "No model with a recurrent layer beats both: the best of them, `gru`, passes " \
           "30.0%, so on these cases reading the words in order bought nothing over a bag of " \
           "words." in text
    assert 'On the 60 "but" clauses, where a model blind to word order passes about half, ' \
           f"`gru` passes the most: 60.0%; the baselines 50.0% (`{TFIDF}`) and 52.0% " \
           f"(`{NBSVM}`)." in text
    assert text.endswith("The candidate for champion, `gru`, passes 30.0% of the negation "
                         "cases: 40.0 points short of the 70% target.")
    better = word_order_summary(table, "dense", target=0.7)
    assert better.endswith("passes 70.0% of the negation cases: it meets the 70% target.")
    two = word_order_summary(table, "gru", target=0.2)
    assert "it meets the 20% target" in two
    recurrent = word_order_summary(word_order(
        {"gru": (0.8, 0.6, 0.7, 0.9), "lstm": (0.6, 0.6, 0.6, 0.5), TFIDF: (0.5, 0.5, 0.5, 0.5),
         NBSVM: (0.1, 0.1, 0.1, 0.5)}, recurrent=("gru", "lstm")), "gru")
    assert "2 of the 2 models with a recurrent layer beat both: `gru` (70.0%), `lstm` " \
           "(60.0%)." in recurrent


def test_lesson_4_table_has_a_row_per_model_and_the_cases_in_each_heading():
    table = word_order({"gru": (0.4, 0.2, 0.3, 0.6), NBSVM: (0.2, 0.2, 0.2, 0.52)})
    text = word_order_markdown(table, "gru")
    assert text.startswith("## Lesson 4: word order")
    assert ('| model | recurrent layer | negated praise (45 cases) | negated pans (45 cases) | '
            'all negation (90 cases) | "but" clauses (60 cases) |') in text
    assert "| gru (candidate) | yes | 40.0% | 20.0% | 30.0% | 60.0% |" in text
    assert f"| **{NBSVM}** (baseline) | no | 20.0% | 20.0% | 20.0% | 52.0% |" in text
    assert text.index("| gru (candidate)") < text.index(f"| **{NBSVM}**")
    assert "![Word order: pass rates per model](word_order.png)" in text


def test_lesson_4_is_a_section_of_the_report_with_its_chart_and_csv(inputs, tmp_path):
    table = full_table(inputs)
    overfitting = overfitting_table(inputs["histories"], inputs["train"])
    lesson = word_order({"gru": (0.4, 0.2, 0.3, 0.6), TFIDF: (0.6, 0.4, 0.5, 0.5),
                         NBSVM: (0.2, 0.2, 0.2, 0.52), "dense": (0.9, 0.5, 0.7, 0.5)})
    write_word_order(tmp_path, lesson)
    write_report(tmp_path, inputs, table, overfitting, "gru", ALPHA, 200, "\n## Champion\n",
                 word_order_markdown(lesson, "gru"))
    markdown = (tmp_path / "comparison.md").read_text()
    assert markdown.index("Lesson 3: overfitting") < markdown.index("Lesson 4: word order") \
        < markdown.index("## Champion")
    page = (tmp_path / "report.html").read_text()
    assert "Lesson 4: word order" in page
    assert page.count('src="data:image/png;base64,') == len(
        re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown))
    assert (tmp_path / "word_order.png").stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "word_order.csv"), lesson)


def test_the_scorer_reads_a_scikit_learn_pipeline_and_tells_recurrent_models(
        tmp_path, monkeypatch):
    import joblib
    import keras
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts = ["a great film", "a wonderful film", "an awful film", "a boring film"]
    model = Pipeline([("tfidf", TfidfVectorizer()), ("logreg", LogisticRegression())])
    model.fit(texts, [1, 1, 0, 0])
    monkeypatch.chdir(tmp_path)
    (tmp_path / EXPORT_DIR / TFIDF).mkdir(parents=True)
    joblib.dump(model, tmp_path / EXPORT_DIR / TFIDF / SKLEARN_MODEL_FILE)
    loaded = load_exported(TFIDF)
    probability = predictor(loaded)(["a great film", "an awful film"])
    assert probability.shape == (2,) and probability[0] > 0.5 > probability[1]
    assert not has_recurrent_layer(loaded)
    results = behavior_results({TFIDF: loaded}, 0.5, 0.01)
    assert set(results.architecture) == {TFIDF} and "but_clauses" in set(results.test)

    sequence = keras.Input((5, 3))
    inner = keras.Model(sequence, keras.layers.GRU(2)(sequence))
    outer_input = keras.Input((5, 3))
    assert has_recurrent_layer(keras.Model(outer_input, inner(outer_input)))
    flat = keras.Input((3,))
    assert not has_recurrent_layer(keras.Model(flat, keras.layers.Dense(1)(flat)))


def test_the_behavior_table_marks_the_tests_the_gate_leaves_out():
    per_test = pd.DataFrame({"type": ["mft", "mft"], "test": ["negated_pans", "but_clauses"],
                             "cases": [45, 60], "gru": [0.0, 0.5], NBSVM: [0.1, 0.5]})
    text = behavior_table_markdown(per_test, ["but_clauses"])
    assert f"| type | test | cases | gru | {NBSVM} |" in text
    assert "| mft | but_clauses (not gated) | 60 | 0.50 | 0.50 |" in text
    assert "| mft | negated_pans | 45 | 0.00 | 0.10 |" in text
    assert "not gated" not in behavior_table_markdown(per_test)
