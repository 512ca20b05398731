"""Chapter 7: word swapping, paired statistics against scipy, the template data."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from bertedu.bias import (
    COUNTERFACTUAL_ATTRIBUTE,
    PairScores,
    audit_rows,
    counterfactual_pairs,
    fill_template,
    load_templates,
    paired_t_test,
    template_pairs,
    wilson_interval,
)
from bertedu.counterfactual import (
    GENDER_MAPPING,
    GENDER_WORD_PAIRS,
    NAME_PAIRS,
    count_terms,
    match_case,
    swap_gender,
    swap_terms,
)

# -- swapping ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("he", "she"),
    ("He", "She"),
    ("HE", "SHE"),
    ("the theme", "the theme"),  # "he" inside a word is not a word
    ("The hero then helped the hen.", "The heroine then helped the hen."),
    ("she said he's here", "he said she's here"),
    ("he and she", "she and he"),  # one pass: not "she and she"
    ("Mr. Smith met his wife.", "Mrs. Smith met her husband."),
    ("The actors and actresses", "The actresses and actors"),
    ("MEN and women", "WOMEN and men"),
    ("John loved Mary", "Mary loved John"),
    ("himself/herself", "herself/himself"),
    ("she-devil", "he-devil"),
    ("Shelby and Heather and Hershey", "Shelby and Heather and Hershey"),  # whole words only
])
def test_swap_gender_cases_and_boundaries(text, expected):
    assert swap_gender(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("I liked her.", "I liked him."),  # before punctuation: object
    ("I liked her", "I liked him"),  # at the end
    ("told her the truth", "told him the truth"),  # before an article: object
    ("Her acting was fine", "His acting was fine"),  # before a noun: possessive
    ("her own film", "his own film"),
    ("the role is his.", "the role is hers."),
    ("his film", "her film"),
    ("The film is hers, not his", "The film is his, not hers"),
])
def test_her_and_his_rule(text, expected):
    assert swap_gender(text) == expected


def test_swap_twice_is_identity_for_unambiguous_words():
    text = "The actor and his brother met the king; she thanked the waitress and John."
    # "his" -> "her" -> "his" before a noun, so this sentence comes back unchanged
    assert swap_gender(swap_gender(text)) == text


def test_gender_mapping_pairs_every_word_with_a_partner_of_the_other_list():
    male = {m for m, _ in GENDER_WORD_PAIRS + NAME_PAIRS}
    female = {f for _, f in GENDER_WORD_PAIRS + NAME_PAIRS}
    assert not male & female
    for word, partner in GENDER_MAPPING.items():
        assert (word in male) != (partner in male), (word, partner)


def test_match_case_and_generic_swap():
    assert [match_case(w, "old") for w in ("young", "Young", "YOUNG")] == ["old", "Old", "OLD"]
    assert swap_terms("Young and OLD, younger", {"young": "old", "old": "young"}) == "Old and YOUNG, younger"
    assert swap_terms("unchanged", {}) == "unchanged"


def test_count_terms_and_leaning():
    count = count_terms("He and his brother met her, the theme.")
    assert (count.male, count.female, count.leaning) == (3, 1, 1)
    assert count_terms("no one here").total == 0


# -- paired statistics ----------------------------------------------------------------------


def test_paired_t_test_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.2, 300)
    b = a + rng.normal(0.01, 0.05, 300)
    ours = paired_t_test(a, b)
    ref = stats.ttest_rel(b, a)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    ci = ref.confidence_interval(0.95)
    assert (ours.ci_low, ours.ci_high) == (pytest.approx(ci.low, rel=1e-10), pytest.approx(ci.high, rel=1e-10))
    assert ours.wilcoxon_p == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert ours.significant()


def test_paired_t_test_by_hand():
    # d = (1, 2, 3): mean 2, s = 1, se = 1/sqrt(3), t = 2 sqrt(3); t_{2, 0.975} = 4.302653.
    # With 2 degrees of freedom the t distribution has a closed form: P(|T| > t) = 1 - t / sqrt(t^2 + 2).
    ours = paired_t_test([0, 0, 0], [1, 2, 3])
    assert ours.mean == 2 and ours.std == 1
    t = 2 * math.sqrt(3)
    assert ours.t == pytest.approx(t)
    assert ours.ci_low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6)
    assert ours.p_value == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-10)  # 0.0742


def test_paired_t_test_edge_cases():
    zero = paired_t_test([0.5, 0.5], [0.5, 0.5])
    assert (zero.t, zero.p_value, zero.wilcoxon_p) == (0.0, 1.0, None)
    with pytest.raises(ValueError, match="at least 2"):
        paired_t_test([1.0], [2.0])
    with pytest.raises(ValueError, match="equally long"):
        paired_t_test([1.0, 2.0], [2.0])


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (7, 1000), (520, 1000)])
def test_wilson_interval_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ci.low, abs=1e-12) and high == pytest.approx(ci.high, abs=1e-12)


# -- templates and pairs --------------------------------------------------------------------


def test_templates_ship_with_provenance_and_enough_pairs():
    data = load_templates()
    assert "Kiritchenko" in data["provenance"]["in_the_spirit_of"]
    pairs = template_pairs()
    by_attribute = {}
    for pair in pairs:
        by_attribute[pair.attribute] = by_attribute.get(pair.attribute, 0) + 1
    assert len(pairs) >= 1000 and len(by_attribute) >= 2
    assert all(n >= 1000 for n in by_attribute.values()), by_attribute
    template_names = {name.lower() for name, _ in data["attributes"]["gender (names)"]["pairs"]} | \
        {name.lower() for _, name in data["attributes"]["gender (names)"]["pairs"]}
    assert not template_names & {n for pair in NAME_PAIRS for n in pair}  # disjoint from the CDA list


def test_template_pairs_differ_only_in_the_person():
    for pair in template_pairs("gender (nouns)")[:200]:
        assert pair.text_a.lower().replace(pair.group_a, "X", 1) == pair.text_b.lower().replace(pair.group_b, "X", 1)
    assert fill_template("{person} was {adjective}.", "my sister", "great") == "My sister was great."
    with pytest.raises(ValueError, match="No attribute"):
        template_pairs("age")


def test_counterfactual_pairs_are_oriented_female_minus_male():
    pairs = counterfactual_pairs(["He was great.", "She was great and so was her sister.", "No one here.",
                                  "He and she."], [1, 1, 0, 0])
    assert len(pairs) == 2  # no terms / a tie: left out
    assert (pairs[0].text_a, pairs[0].text_b) == ("He was great.", "She was great.")
    assert (pairs[1].text_a, pairs[1].text_b) == ("He was great and so was his brother.",
                                                  "She was great and so was her sister.")


def test_audit_rows_flip_rate_and_bonferroni():
    pairs = template_pairs("gender (names)")[:40] + counterfactual_pairs(["He was fine."] * 40)
    p_a = np.full(80, 0.6)
    p_b = np.concatenate([np.full(40, 0.6) + np.linspace(-0.2, 0.2, 40), np.full(40, 0.4)])
    rows = audit_rows(PairScores(pairs, p_a, p_b))
    names, swapped = rows
    assert names.flips == 10 and names.flip_rate == 0.25  # p_b below 0.5 for 10 of the 40 pairs
    assert not names.significant  # differences symmetric around 0
    assert swapped.attribute == COUNTERFACTUAL_ATTRIBUTE and swapped.flips == 40
    assert swapped.mean_difference == pytest.approx(-0.2) and swapped.mean_abs_difference == pytest.approx(0.2)


def test_package_data_is_declared_for_non_editable_installs():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["bertedu"]
    assert "resources/*.json" in patterns
    json.dumps(load_templates())  # loads through importlib.resources


@pytest.mark.parametrize("seed, n", [(0, 6), (1, 10), (2, 13)])
def test_sign_flip_test_matches_scipy_exact_permutation_test(seed, n):
    from bertedu.bias import sign_flip_test

    d = np.random.default_rng(seed).normal(0.05, 0.1, n)
    ref = stats.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                                 alternative="two-sided", n_resamples=np.inf)
    assert sign_flip_test(d) == pytest.approx(ref.pvalue, rel=1e-12)


def test_sign_flip_test_by_hand_and_sampled():
    from bertedu.bias import sign_flip_test

    # d = (1, 2, 3): of the 8 sign patterns only (+,+,+) and (-,-,-) reach |mean| 2.
    assert sign_flip_test([1, 2, 3]) == 2 / 8
    assert sign_flip_test([0.0, 0.0]) == 1.0
    d = np.random.default_rng(0).normal(0.0, 1.0, 40)
    assert sign_flip_test(d) == pytest.approx(stats.ttest_1samp(d, 0).pvalue, abs=0.03)  # large n: close to t
