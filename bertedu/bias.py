"""Chapter 7: a bias audit of a sentiment classifier, with paired statistics.

The question: does the predicted sentiment of a text move when *only* a demographic term
changes? Each measurement is a set of matched pairs ``(text_a, text_b)`` that differ in
that term alone, and for each pair the difference::

    d_i = P(positive | text_b) - P(positive | text_a)          # group b minus group a

Two sources of pairs:

- **Templates** (``template_pairs``): sentences written for the course in the spirit of the
  Equity Evaluation Corpus (Kiritchenko & Mohammad, 2018), filled with matched names or
  phrases of two groups (``resources/bias_templates.json``, with its provenance).
- **Counterfactual reviews** (``counterfactual_pairs``): real IMDb test reviews and their
  copies with the gendered words swapped (``bertedu.counterfactual``), oriented so that
  ``b`` is always the more female version.

Per attribute the audit reports (``AuditRow``): the mean paired difference with a 95%
confidence interval and a paired t-test (``paired_t_test``; Wilcoxon's signed-rank test
beside it, which does not assume normal differences), the mean *absolute* difference
(how far verdicts move in either direction), and the flip rate (how often the label
changes) with a Wilson interval (``wilson_interval``). ``bias_audit`` runs it all;
``bertedu bias --model DIR`` prints the table.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from bertedu.counterfactual import count_terms, swap_gender

TEMPLATES_RESOURCE = "resources/bias_templates.json"
COUNTERFACTUAL_ATTRIBUTE = "gender (IMDb counterfactual)"

# ---------------------------------------------------------------------------------------
# Paired statistics
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """The paired t-test on differences ``d_i = b_i - a_i``.

    mean ± t_{n-1, 0.975} · s / sqrt(n) is the 95% interval of the mean difference
    (``s``: the sample standard deviation of the ``d_i``); ``t = mean / (s / sqrt(n))``;
    ``p_value`` the two-sided probability of a ``|t|`` at least this large if the true
    mean difference were 0. ``wilcoxon_p``: Wilcoxon's signed-rank test of the same
    null, from scipy (None when every difference is 0).
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    wilcoxon_p: float | None = None

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def paired_t_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedTest:
    """The paired t-test of ``b - a``, computed step by step (scipy only for the t distribution).

    Agrees with ``scipy.stats.ttest_rel(b, a)`` (tested). With every difference 0 the
    test is undefined; we return t = 0, p = 1 and a zero-width interval.
    """
    from scipy import stats

    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"Need two equally long 1-d sequences of paired values; got shapes {a_arr.shape}, {b_arr.shape}.")
    n = len(a_arr)
    if n < 2:
        raise ValueError(f"A paired test needs at least 2 pairs; got {n}.")
    d = b_arr - a_arr  # (n,)
    mean = float(d.mean())
    std = float(d.std(ddof=1))  # sample standard deviation: n - 1 in the denominator
    standard_error = std / math.sqrt(n)
    t_crit = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))
    if standard_error == 0.0:
        t, p = (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    else:
        t = mean / standard_error
        p = float(2 * stats.t.sf(abs(t), df=n - 1))  # two-sided
    wilcoxon_p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else None
    return PairedTest(n, mean, std, mean - t_crit * standard_error, mean + t_crit * standard_error, t, p, wilcoxon_p)


def sign_flip_test(differences: Sequence[float], max_exact: int = 16, n_resamples: int = 100_000,
                   seed: int = 0) -> float:
    """The paired permutation test: a two-sided p-value that assumes no distribution.

    If the groups made no difference, each ``d_i`` would be as likely to have the other
    sign. So flip the signs in every one of the ``2^n`` ways and count how often the
    mean is at least as far from 0 as the observed one (the observed pattern included).
    Exact up to ``max_exact`` pairs; beyond that, ``n_resamples`` random sign patterns.
    Agrees with ``scipy.stats.permutation_test(..., permutation_type="samples")`` (tested).
    """
    d = np.asarray(differences, dtype=np.float64)  # (n,)
    if d.ndim != 1 or len(d) < 1:
        raise ValueError(f"Need a 1-d sequence of at least one difference; got shape {d.shape}.")
    observed = abs(d.mean())
    if len(d) <= max_exact:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)  # (2^n, n) every pattern
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(n_resamples, len(d)))
    means = np.abs((signs * d).mean(axis=1))  # (patterns,)
    tolerance = 1e-12 * max(1.0, observed)  # the same mean computed in another order is the same mean
    return float((means >= observed - tolerance).mean())


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``k / n`` (good even near 0 and 1 and for small n).

    Agrees with ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")`` (tested).
    """
    from scipy import stats

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"Need 0 <= k <= n and n > 0; got k={k}, n={n}.")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------------------------
# Matched pairs: templates and counterfactual reviews
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPair:
    """Two texts that differ only in a demographic term; ``b`` is the second group's."""

    attribute: str
    text_a: str
    text_b: str
    group_a: str = ""
    group_b: str = ""
    template: str = ""
    adjective: str = ""
    sentiment: str = ""  # of the adjective: positive / negative / neutral (templates only)
    label: int | None = None  # the review's gold label (counterfactual reviews only)


@lru_cache(maxsize=1)
def load_templates() -> dict[str, Any]:
    """The template data shipped with the package (templates, adjectives, attributes, provenance)."""
    text = resources.files("bertedu").joinpath(TEMPLATES_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


def fill_template(template: str, person: str, adjective: str) -> str:
    """Put a person phrase and an adjective in a template; capitalise the sentence's first letter."""
    text = template.format(person=person, adjective=adjective)
    return text[:1].upper() + text[1:]


def template_pairs(attribute: str | None = None, data: dict[str, Any] | None = None) -> list[TextPair]:
    """Every template x adjective x (a, b) pair of ``attribute`` (all attributes when None)."""
    data = data or load_templates()
    attributes = data["attributes"]
    if attribute is not None and attribute not in attributes:
        raise ValueError(f"No attribute {attribute!r} in the templates; there are: {', '.join(attributes)}.")
    pairs = []
    for name, spec in attributes.items():
        if attribute is not None and name != attribute:
            continue
        for template in data["templates"]:
            for sentiment, adjectives in data["adjectives"].items():
                for adjective in adjectives:
                    for a, b in spec["pairs"]:
                        pairs.append(TextPair(name, fill_template(template, a, adjective),
                                              fill_template(template, b, adjective), a, b, template, adjective, sentiment))
    return pairs


def counterfactual_pairs(texts: Sequence[str], labels: Sequence[int] | None = None) -> list[TextPair]:
    """Reviews with gendered words, each paired with its swapped copy; ``b`` the more female one.

    Reviews without a listed term, or with as many male as female terms (no direction),
    are left out.
    """
    pairs = []
    for i, text in enumerate(texts):
        leaning = count_terms(text).leaning
        if leaning == 0:
            continue
        swapped = swap_gender(text)
        a, b = (text, swapped) if leaning > 0 else (swapped, text)
        pairs.append(TextPair(COUNTERFACTUAL_ATTRIBUTE, a, b, "more male", "more female",
                              label=None if labels is None else int(labels[i])))
    return pairs


# ---------------------------------------------------------------------------------------
# The audit
# ---------------------------------------------------------------------------------------


def positive_probability(classifier: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """``(N,)`` P(positive) of a ``SentimentClassifier`` for each text, in order."""
    labels = list(classifier.info.labels)
    column = labels.index("positive") if "positive" in labels else len(labels) - 1
    return classifier.predict_proba(texts, batch_size)[:, column].astype(np.float64)


@dataclass(frozen=True)
class PairScores:
    """P(positive) of both texts of every pair, ``(N,)`` each, aligned with ``pairs``."""

    pairs: list[TextPair]
    p_a: np.ndarray
    p_b: np.ndarray

    @property
    def differences(self) -> np.ndarray:
        return self.p_b - self.p_a  # (N,)

    @property
    def flips(self) -> np.ndarray:
        return (self.p_a >= 0.5) != (self.p_b >= 0.5)  # (N,) the label changed

    def concat(self, other: PairScores) -> PairScores:
        return PairScores(self.pairs + other.pairs, np.concatenate([self.p_a, other.p_a]),
                          np.concatenate([self.p_b, other.p_b]))

    def select(self, attribute: str) -> PairScores:
        keep = [i for i, pair in enumerate(self.pairs) if pair.attribute == attribute]
        return PairScores([self.pairs[i] for i in keep], self.p_a[keep], self.p_b[keep])

    @property
    def attributes(self) -> list[str]:
        return list(dict.fromkeys(pair.attribute for pair in self.pairs))


def score_pairs(classifier: Any, pairs: Sequence[TextPair], batch_size: int = 64) -> PairScores:
    """Run the classifier on both texts of every pair (one batched pass over all texts)."""
    if not pairs:
        raise ValueError("No pairs to score.")
    texts = [pair.text_a for pair in pairs] + [pair.text_b for pair in pairs]
    p = positive_probability(classifier, texts, batch_size)
    return PairScores(list(pairs), p[:len(pairs)], p[len(pairs):])


@dataclass(frozen=True)
class AuditRow:
    """One attribute's verdict. Differences are P(positive) of group b minus group a."""

    attribute: str
    groups: str  # "b - a"
    n_pairs: int
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    wilcoxon_p: float | None
    mean_abs_difference: float
    flips: int
    flip_rate: float
    flip_ci_low: float
    flip_ci_high: float
    significant: bool  # p_value below alpha / number of rows (Bonferroni)


def audit_rows(scores: PairScores, alpha: float = 0.05) -> list[AuditRow]:
    """One ``AuditRow`` per attribute; significance at ``alpha`` divided by the number of rows."""
    attributes = scores.attributes
    threshold = alpha / len(attributes)
    rows = []
    for attribute in attributes:
        part = scores.select(attribute)
        test = paired_t_test(part.p_a, part.p_b)
        flips = int(part.flips.sum())
        low, high = wilson_interval(flips, test.n)
        first = part.pairs[0]
        groups = f"{first.group_b} - {first.group_a}" if attribute == COUNTERFACTUAL_ATTRIBUTE else \
            _group_names(attribute)
        rows.append(AuditRow(attribute, groups, test.n, test.mean, test.ci_low, test.ci_high, test.p_value,
                             test.wilcoxon_p, float(np.abs(part.differences).mean()), flips, flips / test.n,
                             low, high, test.p_value < threshold))
    return rows


def _group_names(attribute: str) -> str:
    spec = load_templates()["attributes"].get(attribute)
    return f"{spec['groups'][1]} - {spec['groups'][0]}" if spec else "b - a"


@dataclass
class BiasAudit:
    """The audit of one classifier: its rows and the scores they came from."""

    rows: list[AuditRow]
    scores: PairScores
    alpha: float = 0.05
    test_accuracy: float | None = None  # on the audited reviews, when there were any
    n_reviews: int | None = None

    def row(self, attribute: str) -> AuditRow:
        for row in self.rows:
            if row.attribute == attribute:
                return row
        raise KeyError(f"No attribute {attribute!r}; there are: {', '.join(r.attribute for r in self.rows)}.")

    def table(self) -> str:
        """The audit as a fixed-width text table (differences in percentage points)."""
        header = (f"{'attribute':<30} {'pairs':>5} {'mean diff (pp)':>15} {'95% CI (pp)':>17} {'p (t)':>8} "
                  f"{'p (Wilc.)':>9} {'mean |d| (pp)':>13} {'flips':>11}  significant")
        lines = [header, "-" * len(header)]
        for r in self.rows:
            wilcoxon = f"{r.wilcoxon_p:9.2g}" if r.wilcoxon_p is not None else f"{'-':>9}"
            lines.append(
                f"{r.attribute:<30} {r.n_pairs:>5} {100 * r.mean_difference:>+15.2f} "
                f"{f'[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]':>17} {r.p_value:>8.2g} {wilcoxon} "
                f"{100 * r.mean_abs_difference:>13.2f} {f'{r.flips} ({100 * r.flip_rate:.1f}%)':>11}  "
                f"{'yes' if r.significant else 'no'}"
            )
        if self.test_accuracy is not None:
            lines.append(f"Accuracy on the {self.n_reviews} audited reviews: {100 * self.test_accuracy:.1f}%.")
        lines.append("d = P(positive | b) - P(positive | a), in percentage points (pp); b - a: "
                     + "; ".join(f"{r.attribute}: {r.groups}" for r in self.rows) + ".")
        lines.append(f"Significant: paired t-test p < {self.alpha:g}/{len(self.rows)} (Bonferroni). "
                     "Flips: pairs whose label differs.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "correction": "bonferroni", "difference": "P(positive | b) - P(positive | a)",
                "test_accuracy": self.test_accuracy, "n_reviews": self.n_reviews, "rows": [asdict(r) for r in self.rows]}


def bias_audit(classifier: Any, reviews: Any | None = None, *, attributes: Sequence[str] | None = None,
               batch_size: int = 64, alpha: float = 0.05, template_scores: PairScores | None = None) -> BiasAudit:
    """Template pairs of every attribute (or of ``attributes``) and, given IMDb ``reviews``
    (a ``ReviewSet``), their gender-swapped copies: scored, tested, one row per attribute.

    With ``reviews`` the audit also gives the test accuracy on them: every review is
    scored once, then only the swapped copies are. ``template_scores``: those template
    pairs already scored with this classifier (``score_pairs``), so they are not scored again.
    """
    names = list(attributes) if attributes is not None else list(load_templates()["attributes"])
    pairs = [pair for name in names for pair in template_pairs(name)]
    if template_scores is not None and template_scores.pairs != pairs:
        raise ValueError("template_scores must hold exactly the template pairs of the audited attributes, "
                         "in order: score them with score_pairs(classifier, template_pairs()).")
    scores = template_scores
    if scores is None and pairs:
        scores = score_pairs(classifier, pairs, batch_size)
    accuracy = None
    if reviews is not None:
        p_original = positive_probability(classifier, reviews.texts, batch_size)  # (N,)
        accuracy = float(((p_original >= 0.5) == np.asarray(reviews.labels, dtype=bool)).mean())
        counterfactual = counterfactual_scores(classifier, reviews.texts, reviews.labels, p_original, batch_size)
        scores = counterfactual if scores is None else scores.concat(counterfactual)
    if scores is None:
        raise ValueError("Nothing to audit: give template attributes or reviews.")
    return BiasAudit(audit_rows(scores, alpha), scores, alpha, accuracy, None if reviews is None else len(reviews.texts))


def counterfactual_scores(classifier: Any, texts: Sequence[str], labels: Sequence[int] | None,
                          p_original: np.ndarray, batch_size: int = 64) -> PairScores:
    """``PairScores`` of the gendered reviews and their swapped copies, reusing ``p_original``."""
    pairs, p_a, p_b, swapped_texts = [], [], [], []
    for i, text in enumerate(texts):
        leaning = count_terms(text).leaning
        if leaning == 0:
            continue
        swapped_texts.append(swap_gender(text))
        pairs.append(i)
    p_swapped = positive_probability(classifier, swapped_texts, batch_size) if swapped_texts else np.zeros(0)
    text_pairs = []
    for k, i in enumerate(pairs):
        male_first = count_terms(texts[i]).leaning > 0  # the original is the more male version
        a, b = (texts[i], swapped_texts[k]) if male_first else (swapped_texts[k], texts[i])
        text_pairs.append(TextPair(COUNTERFACTUAL_ATTRIBUTE, a, b, "more male", "more female",
                                   label=None if labels is None else int(labels[i])))
        p_a.append(p_original[i] if male_first else p_swapped[k])
        p_b.append(p_swapped[k] if male_first else p_original[i])
    return PairScores(text_pairs, np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64))


def plot_audit(audits: dict[str, BiasAudit], ax: Any = None) -> Any:
    """Mean paired difference with its 95% interval, per attribute, one colour per model."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.9 + 0.55 * len(next(iter(audits.values())).rows) * len(audits)))
    attributes = [r.attribute for r in next(iter(audits.values())).rows]
    height = 0.8 / len(audits)
    for k, (name, audit) in enumerate(audits.items()):
        y = np.arange(len(attributes)) + (k - (len(audits) - 1) / 2) * height
        rows = [audit.row(a) for a in attributes]
        means = np.array([100 * r.mean_difference for r in rows])
        errors = np.array([[100 * (r.mean_difference - r.ci_low) for r in rows],
                           [100 * (r.ci_high - r.mean_difference) for r in rows]])
        ax.errorbar(means, y, xerr=errors, fmt="o", capsize=3, label=name)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(attributes)), [f"{a}\n({_group_names(a) if a != COUNTERFACTUAL_ATTRIBUTE else 'more female - more male'})"
                                           for a in attributes], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean paired difference in P(positive), percentage points (95% CI)")
    ax.set_title("Does the verdict move when only the group term changes?")
    if len(audits) > 1:
        ax.legend(fontsize=8)
    return ax


__all__ = [
    "AuditRow",
    "BiasAudit",
    "PairScores",
    "PairedTest",
    "TextPair",
    "audit_rows",
    "bias_audit",
    "counterfactual_pairs",
    "counterfactual_scores",
    "fill_template",
    "load_templates",
    "paired_t_test",
    "plot_audit",
    "positive_probability",
    "score_pairs",
    "sign_flip_test",
    "template_pairs",
    "wilson_interval",
]
