"""The report as markdown, and as one self-contained HTML page with the charts embedded."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from pipeline import UserError
from pipeline.reporting.comparison import baseline_names, format_p

BASELINE_LABELS = {"tfidf_logreg": "TF-IDF + LR", "nbsvm": "NBSVM"}
BASELINE_DESCRIPTIONS = {
    "tfidf_logreg": "TF-IDF + logistic regression (word uni- and bigrams)",
    "nbsvm": "NBSVM (naive-Bayes-weighted binarized word n-grams + logistic regression)",
}


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _ci(row, metric: str) -> str:
    return f"{_pct(row[metric])} [{100 * row[f'{metric}_ci_low']:.2f}, " \
           f"{100 * row[f'{metric}_ci_high']:.2f}]"


def _or_dash(text) -> str:
    return "—" if pd.isna(text) else text


def _markdown_table(headings: list[str], rows: list[list[str]], align: str) -> list[str]:
    """align: one letter per column, l or r."""
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return ["| " + " | ".join(headings) + " |", rule,
            *("| " + " | ".join(row) + " |" for row in rows)]


def to_markdown(table: pd.DataFrame, best: str) -> str:
    """The comparison table, best test accuracy first."""
    level = f"{table.confidence.iloc[0]:.0%} CI"
    baselines = baseline_names(table)
    headings = ["model", f"test accuracy [{level}]", f"F1 [{level}]", "ROC-AUC", "parameters",
                "epochs (kept)", *(f"vs {BASELINE_LABELS.get(b, b)}" for b in baselines),
                f"vs best ({best})"]
    rows = []
    for _, row in table.iterrows():
        name = f"**{row.architecture}** (baseline)" if row.is_baseline else row.architecture
        epochs = "—" if pd.isna(row.epochs) else f"{int(row.epochs)} ({int(row.best_epoch)})"
        rows.append([name, _ci(row, "accuracy"), _ci(row, "f1"), f"{row.roc_auc:.4f}",
                     f"{int(row.parameters):,}", epochs,
                     *(_or_dash(row[f"vs_{b}_text"]) for b in baselines),
                     _or_dash(row.vs_best_text)])
    return "\n".join(_markdown_table(headings, rows, "lrrrrr" + "l" * (len(baselines) + 1)))


def summary_markdown(table: pd.DataFrame, best: str, alpha: float) -> str:
    """Where the architectures stand against the strongest baseline, in plain words."""
    strongest, *others = baseline_names(table)
    base = table[table.architecture == strongest].iloc[0]
    nets = table[~table.is_baseline]
    significant = nets[f"vs_{strongest}_p_value"] < alpha
    better = int((significant & (nets[f"vs_{strongest}_points"] > 0)).sum())
    worse = int((significant & (nets[f"vs_{strongest}_points"] < 0)).sum())
    top = nets[nets.architecture == best].iloc[0]
    described = BASELINE_DESCRIPTIONS.get(strongest, strongest)
    lines = [
        f"The strongest baseline, `{strongest}`, {described}, reaches "
        f"**{_ci(base, 'accuracy')}** test accuracy. Of {len(nets)} architectures, "
        f"**{better} are significantly better** than it, **{worse} significantly worse** and "
        f"{len(nets) - better - worse} not significantly different (McNemar, α={alpha:.2g}). "
        f"The best architecture, `{best}`, reaches {_ci(top, 'accuracy')}: "
        + "; ".join(f"{top[f'vs_{b}_text']} against `{b}`" for b in (strongest, *others)) + "."]
    if better == 0:
        lines.append(f"No architecture is significantly more accurate than `{strongest}`, so on "
                     "test accuracy alone that baseline is the one to pick.")
    return "\n\n".join(lines)


def paired_test_count(table: pd.DataFrame) -> int:
    """Distinct McNemar tests in the table: every model against each baseline and the best."""
    models, baselines = len(table), len(baseline_names(table))
    return (baselines + 1) * (models - 1) - baselines - baselines * (baselines - 1) // 2


METHOD_NOTES = """\
- **Confidence intervals**: percentile bootstrap over the {reviews:,} test reviews,
  {n_bootstrap} resamples, seeded from `seed` (`evaluate.n_bootstrap`, `evaluate.confidence`).
- **Significance**: McNemar's exact test on paired predictions (the same reviews for every
  model): a two-sided binomial test on the reviews exactly one of the two models gets right.
  Significant means p < {alpha:.2g} (`1 - evaluate.confidence`); p-values are not adjusted for
  the {tests} comparisons (Bonferroni would ask for p < {bonferroni:.2g})."""

TIMINGS_POINTER = (
    "Training and inference times depend on the machine, not on the params, so this file and "
    "`comparison.csv` leave them out (two runs of the same params give the same bytes): they "
    "are in `timings.csv`, in the chart above and in the Timings table of `report.html`.")


def timings_markdown(timings: pd.DataFrame) -> str:
    """The machine's figures (reports/timings.csv) for report.html only."""
    rows = [[f"**{row.architecture}** (baseline)" if row.is_baseline else row.architecture,
             f"{row.train_seconds:.1f}", f"{row.train_samples_per_second:,.1f}",
             f"{row.predict_ms_per_review:.3f}"] for row in timings.itertuples()]
    return "\n".join([
        "## Timings (this machine)", "",
        "Seconds measured on the machine that ran the pipeline (in `timings/` and "
        "`timings.csv`); another machine, or another run on this one, gives other numbers. "
        "The networks score token ids prepared in advance (batched by length); the baselines' "
        "inference time includes vectorizing the raw text, and their samples/s is one pass over "
        "the training reviews.", "",
        *_markdown_table(["model", "training time (s)", "training samples/s",
                          "inference (ms/review)"], rows, "lrrr")])


def significance_markdown(table: pd.DataFrame, best: str) -> str:
    others = table[table.architecture != best]
    rows = [[row.architecture, f"{row.vs_best_points:+.2f}", f"{row.vs_best_only_reference:,.0f}",
             f"{row.vs_best_only_this:,.0f}", format_p(row.vs_best_p_value), row.vs_best_text]
            for row in others.itertuples()]
    return "\n".join(_markdown_table(
        ["model", f"accuracy vs {best} (pts)", f"only {best} right", "only this model right",
         "McNemar p", "verdict"], rows, "lrrrrl"))


def calibration_markdown(table: pd.DataFrame) -> str:
    ordered = table.sort_values("brier")
    rows = [[row.architecture, f"{row.brier:.4f}", f"{row.ece:.4f}", f"{row.log_loss:.4f}",
             "{tn:,} / {fp:,} / {fn:,} / {tp:,}".format(**row.confusion_matrix)]
            for row in ordered.itertuples()]
    return "\n".join(_markdown_table(
        ["model", "Brier score", "ECE", "log loss", "confusion matrix TN / FP / FN / TP"],
        rows, "lrrrr"))


def overfitting_summary(overfitting: pd.DataFrame) -> str:
    """What the runs past the kept epoch show, in numbers."""
    past = overfitting[overfitting.epochs > overfitting.kept_epoch]
    if past.empty:
        return ("No architecture trained past the epoch it kept: validation loss was still "
                "falling when `train.max_epochs` ended training, so these runs show no "
                "overfitting yet.")
    worst = past.iloc[0]
    return (f"{len(past)} of {len(overfitting)} architectures trained past the epoch they kept. "
            "Over those extra epochs the gap between training and validation accuracy grew from "
            f"{past.kept_gap_pts.mean():.1f} to {past.last_gap_pts.mean():.1f} points on "
            f"average and validation loss rose by {past.val_loss_rise.mean():.3f}: the models "
            "kept fitting the training reviews while their predictions on unseen reviews got "
            "worse (more confidently wrong, even where validation accuracy held). That is "
            "overfitting, and why early stopping restores the kept weights. The widest gap at "
            f"the last epoch: `{worst.architecture}`, {worst.last_gap_pts:.1f} points. "
            "(Training accuracy is Keras's running average over each epoch with dropout on, so "
            "it lags the model's real fit: a small negative gap in early epochs is normal.)")


def overfitting_markdown(overfitting: pd.DataFrame) -> str:
    rows = [[row.architecture, str(row.epochs), str(row.kept_epoch),
             f"{_pct(row.kept_train_accuracy)} / {_pct(row.kept_val_accuracy)}",
             f"{row.kept_gap_pts:+.1f}",
             f"{_pct(row.last_train_accuracy)} / {_pct(row.last_val_accuracy)}",
             f"{row.last_gap_pts:+.1f}", f"{row.val_loss_rise:+.4f}"]
            for row in overfitting.itertuples()]
    lines = [
        "The learning curves show training and validation loss and accuracy per epoch; the red "
        "dot marks the epoch early stopping kept (lowest validation loss; its weights are the "
        "ones evaluated).", "", overfitting_summary(overfitting),
        "", *_markdown_table(
            ["architecture", "epochs run", "kept epoch", "train / val accuracy at kept epoch",
             "gap (pts)", "train / val accuracy at last epoch", "gap (pts)",
             "val loss rise after kept epoch"], rows, "lrrrrrrr")]
    return "\n".join(lines)


def tuning_markdown(tuning: pd.DataFrame) -> str:
    """Defaults against tuned values, validation and test, and the validation-test gap."""
    rows = [[row.architecture, str(row.trials) if row.tuned else "not tuned",
             f"{_pct(row.defaults_val_accuracy)} / {_pct(row.tuned_val_accuracy)}",
             f"{row.val_gain_pts:+.2f}",
             f"{_pct(row.defaults_test_accuracy)} / {_pct(row.tuned_test_accuracy)}",
             f"{row.test_gain_pts:+.2f}", f"{row.val_test_gap_pts:+.2f}"]
            for row in tuning.itertuples()]
    return "\n".join([
        "Every trial trains as the train stage does (whole training split, same epochs, early "
        "stopping and seed), so a trial's validation accuracy is the final model's; trial 0 is "
        "the params.yaml defaults. The study ranks trials on validation accuracy only; the "
        "defaults' test accuracy is recorded after the fact, to show what tuning bought on "
        "unseen reviews. Validation is grouped by movie like the test set, so the last column "
        "(validation minus test accuracy of the trained model) shows how well validation "
        "predicts the test set.", "",
        *_markdown_table(["architecture", "trials (defaults incl.)",
                          "val accuracy: defaults / tuned", "val gain (pts)",
                          "test accuracy: defaults / tuned", "test gain (pts)",
                          "val - test (pts)"], rows, "lrrrrrr")])


NEGATION_TARGET = 0.70  # issue 21: the champion should pass this share of the negation cases
WORD_ORDER_HEADINGS = {"negated_praise": "negated praise", "negated_pans": "negated pans",
                       "all_negation": "all negation", "but_clauses": "\"but\" clauses"}


def _pct1(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.1f}%"


def _word_order_negation(table: pd.DataFrame) -> str:
    """Which model passes the most negation cases, and whether a recurrent one beats the
    baselines, as sentences."""
    by = table.set_index("model")
    best = by.all_negation.idxmax()  # the first of a tie: the more accurate
    lines = [f"Of the {int(by.all_negation_cases.iloc[0])} negation cases (negated praise and "
             f"negated pans pooled), `{best}` passes the most: {_pct1(by.all_negation[best])} "
             f"({_pct1(by.negated_praise[best])} of the negated praise, "
             f"{_pct1(by.negated_pans[best])} of the negated pans)."]
    praise, pans = by.negated_praise_cases.iloc[0], by.negated_pans_cases.iloc[0]
    constant = max(praise, pans) / (praise + pans)  # negated praise is all 0, negated pans all 1
    fewer = int((by.all_negation < constant).sum())
    lines.append(f"A model that gave every review the same label would pass {_pct1(constant)} "
                 "(negated praise is all negative, negated pans all positive); "
                 + ("every model passes fewer." if fewer == len(by) else
                    f"{fewer} of the {len(by)} models pass fewer."))
    baselines, nets = by[by.is_baseline], by[by.recurrent & ~by.is_baseline]
    if baselines.empty:
        return " ".join(lines)
    lines.append("The bag-of-words baselines pass " + " and ".join(
        f"{_pct1(row.all_negation)} (`{name}`)" for name, row in baselines.iterrows()) + ".")
    above = nets[nets.all_negation > baselines.all_negation.max()]
    if len(nets) and above.empty:
        top = nets.all_negation.idxmax()
        lines.append("No model with a recurrent layer beats both: the best of them, "
                     f"`{top}`, passes {_pct1(nets.all_negation[top])}, so on these cases "
                     "reading the words in order bought nothing over a bag of words.")
    elif len(above):
        lines.append(f"{len(above)} of the {len(nets)} models with a recurrent layer beat "
                     "both: " + ", ".join(f"`{name}` ({_pct1(rate)})"
                                           for name, rate in above.all_negation.items()) + ".")
    return " ".join(lines)


def word_order_summary(table: pd.DataFrame, candidate: str,
                       target: float = NEGATION_TARGET) -> str:
    """What `table` (behavior.word_order_table, the most accurate first) shows, in plain
    words: the best model on negation, whether a model with a recurrent layer beats the
    baselines there, the best on "but" clauses, and the candidate against `target`."""
    by = table.set_index("model")
    lines = [_word_order_negation(table)]
    if by.but_clauses.notna().any():
        top = by.but_clauses.idxmax()
        baselines = by[by.is_baseline]
        lines.append(f"On the {int(by.but_clauses_cases.iloc[0])} \"but\" clauses, where a "
                     "model blind to word order passes about half, `" + top + "` passes the "
                     f"most: {_pct1(by.but_clauses[top])}"
                     + ("; the baselines " + " and ".join(
                         f"{_pct1(row.but_clauses)} (`{name}`)"
                         for name, row in baselines.iterrows()) if len(baselines) else "")
                     + ".")
    rate = by.all_negation[candidate]
    verdict = (f"it meets the {target:.0%} target" if rate >= target else
               f"{100 * (target - rate):.1f} points short of the {target:.0%} target")
    lines.append(f"The candidate for champion, `{candidate}`, passes {_pct1(rate)} of the "
                 f"negation cases: {verdict}.")
    return " ".join(lines)


def word_order_markdown(table: pd.DataFrame, candidate: str,
                        target: float = NEGATION_TARGET) -> str:
    """The report's "Lesson 4: word order" section: the summary, the table (one row per model,
    a column per word-order test with its number of cases) and the chart word_order.png."""
    columns = list(WORD_ORDER_HEADINGS)
    headings = ["model", "recurrent layer",
                *(f"{WORD_ORDER_HEADINGS[c]} ({int(table[f'{c}_cases'].iloc[0])} cases)"
                  for c in columns)]
    rows = [[f"**{row.model}** (baseline)" if row.is_baseline else
             f"{row.model} (candidate)" if row.model == candidate else row.model,
             "yes" if row.recurrent else "no", *(_pct1(getattr(row, c)) for c in columns)]
            for row in table.itertuples()]
    return "\n".join([
        "## Lesson 4: word order", "",
        "Does reading the words in order help where order decides the verdict? Three "
        "behavioral tests (cases in `pipeline/behavior_cases.yaml`) say: negated praise "
        "(\"This movie was not great.\", negative), negated pans (\"This film was not boring "
        "at all.\", positive), and \"but\" clauses whose second half gives the verdict (\"The "
        "acting is great, but overall the film is boring.\"); each \"but\" case has a twin "
        "with the same words in the other order and the other label. Share of cases passed per "
        "model, the most accurate first; the \"but\" clauses are reported, not gated. "
        f"Target: the champion passes {target:.0%} of the negation cases.", "",
        word_order_summary(table, candidate, target), "",
        *_markdown_table(headings, rows, "ll" + "r" * len(columns)), "",
        "![Word order: pass rates per model](word_order.png)", ""])


def report_markdown(table: pd.DataFrame, overfitting: pd.DataFrame, best: str, alpha: float,
                    n_bootstrap: int, timings: pd.DataFrame | None = None,
                    tuning: pd.DataFrame | None = None, word_order: str = "") -> str:
    """The report; with `timings` (report.html) their table, else (comparison.md) a pointer;
    `word_order` (word_order_markdown) after lesson 3."""
    reviews = int(table.test_reviews.max())
    tests = paired_test_count(table)
    return "\n".join([
        f"# Architecture comparison (IMDB test set, {reviews:,} reviews)", "",
        summary_markdown(table, best, alpha), "",
        to_markdown(table, best), "",
        METHOD_NOTES.format(reviews=reviews, n_bootstrap=n_bootstrap, alpha=alpha, tests=tests,
                            bonferroni=alpha / tests), "",
        "![Test accuracy with confidence intervals](accuracy.png)", "",
        "![Accuracy vs training time](accuracy_vs_training_time.png)", "",
        TIMINGS_POINTER if timings is None else timings_markdown(timings), "",
        f"## Paired significance: `{best}` against every other model", "",
        significance_markdown(table, best), "",
        "## ROC and precision-recall", "",
        "![ROC curves](roc.png) ![Precision-recall curves](precision_recall.png)", "",
        "## Calibration and confusion matrices", "",
        "Brier score: mean squared error of the predicted probability (lower is better); ECE: "
        "review-weighted gap between predicted probability and observed share of positives in "
        "the reliability diagram's bins.", "",
        calibration_markdown(table), "",
        "![Reliability diagram](calibration.png)", "",
        *(["## Tuning: the params.yaml defaults against the tuned values", "",
            tuning_markdown(tuning), ""] if tuning is not None else []),
        "## Lesson 3: overfitting", "",
        overfitting_markdown(overfitting), "",
        "![Learning curves, loss](learning_curves_loss.png)", "",
        "![Learning curves, accuracy](learning_curves_accuracy.png)", "",
        *([word_order] if word_order else [])])


HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
</style></head>
<body>
{body}
</body></html>
"""


def to_html(markdown: str, image_dir: Path) -> str:
    """One self-contained page: every image the markdown names is embedded as a data URI."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(markdown)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                image = image_dir / child.attrs["src"]
                if not image.is_file():
                    raise UserError(f"the report names {image}, which was not written")
                data = base64.b64encode(image.read_bytes()).decode("ascii")
                child.attrs["src"] = f"data:image/png;base64,{data}"
    title = markdown.splitlines()[0].lstrip("# ")
    return HTML_PAGE.format(title=html.escape(title),
                            body=parser.renderer.render(tokens, parser.options, {}))
