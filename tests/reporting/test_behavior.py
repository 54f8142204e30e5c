from collections import Counter

import numpy as np
import pandas as pd
import pytest

from pipeline import UserError
from pipeline.reporting.behavior import (
    NEGATION_TESTS,
    WORD_ORDER_TESTS,
    Case,
    expand,
    load_cases,
    pass_rates,
    pass_rates_by_architecture,
    pass_rates_by_test,
    run_suite,
    shortfalls,
    summary,
    ungated_tests,
    word_order_table,
)


def stub(answers: dict[str, float]):
    """A model whose P(positive) for each text is known; it records what it was asked."""
    def predict(texts: list[str]) -> np.ndarray:
        predict.calls.append(list(texts))
        return np.array([answers[t] for t in texts])
    predict.calls = []
    return predict


def test_the_cases_file_expands_to_a_few_hundred_cases_of_each_type():
    cases = load_cases()
    counts = Counter(c.type for c in cases)
    assert 300 <= len(cases) <= 800 and min(counts.values()) >= 100
    assert {c.test for c in cases} >= {"clear_praise", "negated_pans", "person_name_changed",
                                       "html_line_break_added", "positive_sentence_added"}
    assert all(c.label in (0, 1) for c in cases if c.type == "mft")
    assert all(c.perturbed and c.perturbed != c.text for c in cases if c.type != "mft")
    assert all(c.direction in (1, -1) for c in cases if c.type == "dir")
    assert not any("{" in c.text or "}" in (c.perturbed or "") for c in cases)


def test_templates_are_filled_with_every_combination_and_swaps_pair_neighbours():
    spec = {"fillers": {"adj": ["good", "fine"], "who": ["Ann", "Bob", "Cy"]}}
    mft = list(expand({"name": "t", "type": "mft", "label": 1,
                       "templates": ["{who} was {adj}."]}, spec))
    assert len(mft) == 6 and mft[0] == Case("t", "mft", "Ann was good.", label=1)
    inv = list(expand({"name": "s", "type": "inv", "swap": "who",
                       "templates": ["{who} was {adj}."]}, spec))
    assert [(c.text, c.perturbed) for c in inv[:3]] == [
        ("Ann was good.", "Bob was good."), ("Bob was good.", "Cy was good."),
        ("Cy was good.", "Ann was good.")]


def test_line_breaks_and_appended_sentences_change_the_base_reviews():
    spec = {"fillers": {"more": ["Loved it."]}, "reviews": ["Nice film. Good cast."]}
    (brk,) = expand({"name": "b", "type": "inv", "line_break": True}, spec)
    assert brk.perturbed == "Nice film.<br /><br />Good cast."
    (up,) = expand({"name": "u", "type": "dir", "direction": "up", "append": "more"}, spec)
    assert up.perturbed == "Nice film. Good cast. Loved it." and up.direction == 1


def test_a_directional_test_needs_a_direction():
    with pytest.raises(UserError, match="direction"):
        list(expand({"name": "d", "type": "dir", "append": "x"}, {"fillers": {"x": ["a"]}}))


def test_each_test_type_passes_and_fails_as_its_definition_says():
    cases = [
        Case("praise", "mft", "good", label=1),             # 0.9: pass
        Case("praise", "mft", "not bad", label=1),          # 0.2: fail
        Case("names", "inv", "Ann rocks", "Bob rocks"),     # 0.8 -> 0.6: pass
        Case("names", "inv", "Ann rocks!", "Cy rocks!"),    # 0.8 -> 0.3: flips, fail
        Case("up", "dir", "ok", "ok. Loved it.", direction=1),        # 0.5 -> 0.495: pass
        Case("up", "dir", "meh", "meh. Loved it.", direction=1),      # 0.5 -> 0.40: fail
        Case("down", "dir", "so so", "so so. Awful.", direction=-1),  # 0.5 -> 0.60: fail
    ]
    answers = {"good": 0.9, "not bad": 0.2, "Ann rocks": 0.8, "Bob rocks": 0.6,
               "Ann rocks!": 0.8, "Cy rocks!": 0.3, "ok": 0.5, "ok. Loved it.": 0.495,
               "meh": 0.5, "meh. Loved it.": 0.4, "so so": 0.5, "so so. Awful.": 0.6}
    predict = stub(answers)
    results = run_suite(predict, cases, threshold=0.5, dir_tolerance=0.01)
    assert results.passed.tolist() == [True, False, True, False, True, False, False]
    assert pass_rates(results) == {"mft": 0.5, "inv": 0.5, "dir": round(1 / 3, 4)}
    assert len(predict.calls) == 1 and sorted(predict.calls[0]) == sorted(answers)
    per_test = pass_rates_by_test(results).set_index("test")
    assert per_test.loc["down", "pass_rate"] == 0 and per_test.loc["praise", "cases"] == 2
    assert "FAIL p=0.200 (want label 1): not bad" in summary(results)


def test_pass_rates_by_architecture_give_one_column_per_model_in_the_order_asked():
    cases = [Case("praise", "mft", "good", label=1), Case("praise", "mft", "fine", label=1),
             Case("pans", "mft", "awful", label=0)]
    says = {"optimist": {"good": 0.9, "fine": 0.8, "awful": 0.7},
            "reader": {"good": 0.9, "fine": 0.3, "awful": 0.1}}
    results = pd.concat([run_suite(stub(answers), cases).assign(architecture=name)
                         for name, answers in says.items()])
    table = pass_rates_by_architecture(results, ["reader", "optimist"])
    assert table.columns.tolist() == ["type", "test", "cases", "reader", "optimist"]
    assert table.test.tolist() == ["praise", "pans"]  # as the cases file orders them
    assert table.set_index("test").loc["praise"].tolist() == ["mft", 2, 0.5, 1.0]
    assert table.set_index("test").loc["pans"].tolist() == ["mft", 1, 1.0, 0.0]


def test_a_model_that_always_says_positive_scores_chance_on_minimum_functionality():
    cases = load_cases()
    texts = {c.text for c in cases} | {c.perturbed for c in cases if c.perturbed}
    rates = pass_rates(run_suite(stub(dict.fromkeys(texts, 0.9)), cases))
    assert rates == {"mft": 0.5, "inv": 1.0, "dir": 1.0}
    assert shortfalls(rates, {"mft": 0.8, "inv": 0.9, "dir": 0.9}) == ["mft 0.500 < 0.8"]
    assert shortfalls(rates, {"mft": 0.5, "inv": 1.0, "dir": 0.0}) == []


def test_but_clauses_are_balanced_twins_that_only_word_order_tells_apart():
    cases = [c for c in load_cases() if c.test == "but_clauses"]
    assert 30 <= len(cases) <= 60 and all(c.type == "mft" and not c.gate for c in cases)
    assert Counter(c.label for c in cases) == {0: len(cases) // 2, 1: len(cases) // 2}
    assert all(", but " in c.text for c in cases)
    words = Counter((tuple(sorted(c.text.rstrip(".").replace(",", "").split())), c.label)
                    for c in cases)
    for (bag, label), count in words.items():  # the same words, the other label, as often
        assert words[(bag, 1 - label)] == count, bag


def test_the_word_order_tests_are_in_the_cases_file_and_gated_except_but_clauses():
    cases = load_cases()
    assert set(WORD_ORDER_TESTS) <= {c.test for c in cases}
    assert {c.test for c in cases if not c.gate} == {"but_clauses"}
    assert {c.test for c in cases if c.test in NEGATION_TESTS and c.gate} == set(NEGATION_TESTS)


def test_a_template_may_give_its_own_label_and_an_mft_test_needs_one():
    spec = {"fillers": {"adj": ["good", "bad"]}}
    test = {"name": "t", "type": "mft", "gate": False,
            "templates": [{"label": 1, "template": "Fine, but {adj}."}, "Odd, {adj}."]}
    with pytest.raises(UserError, match="needs a label"):
        list(expand(test, spec))
    cases = list(expand({**test, "label": 0}, spec))
    assert [(c.text, c.label, c.gate) for c in cases] == [
        ("Fine, but good.", 1, False), ("Fine, but bad.", 1, False),
        ("Odd, good.", 0, False), ("Odd, bad.", 0, False)]


def test_the_gate_pass_rates_leave_out_the_tests_marked_gate_false():
    cases = [Case("praise", "mft", "good", label=1),
             Case("but", "mft", "fine, but awful", label=0, gate=False),
             Case("but", "mft", "awful, but fine", label=1, gate=False)]
    results = run_suite(stub({"good": 0.9, "fine, but awful": 0.8, "awful, but fine": 0.2}),
                        cases)
    assert pass_rates(results) == {"mft": 1.0}
    assert ungated_tests(results) == ["but"]
    assert pass_rates_by_test(results).set_index("test").loc["but", "pass_rate"] == 0
    assert "mft but: 0.000 of 2 (not gated)" in summary(results)
    assert pass_rates(results.drop(columns="gate")) == {"mft": round(1 / 3, 4)}


def test_the_real_cases_give_the_gate_the_same_rates_with_or_without_but_clauses():
    cases = load_cases()
    texts = {c.text for c in cases} | {c.perturbed for c in cases if c.perturbed}
    says = {t: 0.9 if ("great" in t or "not" in t) else 0.2 for t in texts}
    results = run_suite(stub(says), cases)
    without = run_suite(stub(says), [c for c in cases if c.test != "but_clauses"])
    assert pass_rates(results) == pass_rates(without)


def test_the_word_order_table_pools_the_negation_cases_per_model_in_the_order_asked():
    def rows(model: str, outcomes: dict[str, list[bool]]) -> pd.DataFrame:
        return pd.DataFrame([{"architecture": model, "test": test, "type": "mft",
                              "passed": passed}
                             for test, results in outcomes.items() for passed in results])
    results = pd.concat([
        rows("gru", {"negated_praise": [True, True, False, False],
                     "negated_pans": [True, True], "but_clauses": [True, False],
                     "clear_praise": [False] * 5}),
        rows("nbsvm", {"negated_praise": [False] * 4, "negated_pans": [True, False],
                       "clear_praise": [True]})])
    table = word_order_table(results, ["nbsvm", "gru"], baselines=["nbsvm"], recurrent=["gru"])
    assert table.columns.tolist() == [
        "model", "is_baseline", "recurrent", "negated_praise", "negated_pans", "all_negation",
        "but_clauses", "negated_praise_cases", "negated_pans_cases", "all_negation_cases",
        "but_clauses_cases"]
    assert table.model.tolist() == ["nbsvm", "gru"]
    gru = table.set_index("model").loc["gru"]
    assert (gru.negated_praise, gru.negated_pans, gru.but_clauses) == (0.5, 1.0, 0.5)
    assert gru.all_negation == round(4 / 6, 4)  # the cases pooled, not the rates averaged
    assert gru.all_negation_cases == 6 and gru.recurrent and not gru.is_baseline
    nbsvm = table.set_index("model").loc["nbsvm"]
    assert nbsvm.all_negation == round(1 / 6, 4) and nbsvm.is_baseline
    assert np.isnan(nbsvm.but_clauses) and nbsvm.but_clauses_cases == 0
