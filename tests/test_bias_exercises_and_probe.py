"""Chapter 7: the exercises' reference solutions against the package, the CrowS-style probe, CDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from bertedu.bias import sign_flip_test
from bertedu.counterfactual import swap_terms
from bertedu.crows import CrowsPair, crows_probe, load_crows_pairs, pseudo_log_likelihood, unmodified_positions
from bertedu.exercises import ExerciseError, ch07
from bertedu.finetuning import Example, LengthBucketedBatches, finetune_settings
from bertedu.mitigation import augment_counterfactual, cda_settings, comparison_settings
from bertedu.model import BertConfig
from bertedu.pretraining import BertForPreTraining

# -- exercises ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, pairs", ch07.SWAP_CASES)
def test_swap_words_reference_agrees_with_the_package(text, pairs):
    mapping = {}
    for a, b in pairs:
        mapping[a], mapping[b] = b, a
    assert ch07.swap_words(text, pairs) == swap_terms(text, mapping)


@pytest.mark.parametrize("seed, n", [(0, 5), (1, 9), (2, 12)])
def test_sign_flip_reference_agrees_with_the_package_and_scipy(seed, n):
    d = np.random.default_rng(seed).normal(0.02, 0.1, n).tolist()
    assert ch07.sign_flip_p_value(d) == pytest.approx(sign_flip_test(d), rel=1e-12)
    ref = stats.permutation_test((np.array(d),), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                                 n_resamples=np.inf)
    assert ch07.sign_flip_p_value(d) == pytest.approx(ref.pvalue, rel=1e-12)


def test_swap_words_typical_mistakes():
    def naive(text, pairs):
        for a, b in pairs:
            text = text.replace(a, b)
        return text

    with pytest.raises(ExerciseError, match="whole words"):
        ch07.check_swap_words(naive)
    with pytest.raises(ExerciseError, match="case"):
        ch07.check_swap_words(lambda text, pairs: ch07.swap_words(text.lower(), pairs))


def test_sign_flip_typical_mistakes():
    with pytest.raises(ExerciseError, match="one-sided"):
        ch07.check_sign_flip_p_value(lambda d: ch07.sign_flip_p_value(d) / 2)
    import itertools

    def strict(d):  # counts only patterns strictly further out: misses the observed one and its mirror
        observed = abs(sum(d) / len(d))
        signs = list(itertools.product((1, -1), repeat=len(d)))
        return sum(abs(sum(s * x for s, x in zip(p, d)) / len(d)) > observed + 1e-12 for p in signs) / len(signs)

    with pytest.raises(ExerciseError, match="at least"):
        ch07.check_sign_flip_p_value(strict)


@pytest.mark.parametrize("case", range(len(ch07.BOOTSTRAP_CASES)))
def test_bootstrap_reference_agrees_with_scipy_and_covers_like_a_95_interval(case):
    d = ch07.BOOTSTRAP_CASES[case]
    low, high = ch07.bootstrap_interval(d.tolist(), n_resamples=20_000, seed=3)
    reference = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=20_000, method="percentile",
                                random_state=3).confidence_interval
    width = reference.high - reference.low
    assert abs(low - reference.low) < 0.05 * width and abs(high - reference.high) < 0.05 * width
    assert low < d.mean() < high
    # skewed to the right: the interval reaches further above the mean than below it
    assert high - d.mean() > d.mean() - low


def test_bootstrap_coverage_is_near_95_percent():
    """Over 200 samples from a known skewed distribution, the interval holds the true mean
    about 95% of the time (a percentile bootstrap at n = 80 runs a little under)."""
    rng = np.random.default_rng(11)
    hits = 0
    for trial in range(200):
        d = rng.exponential(1.0, 80) - 0.5  # true mean 0.5
        low, high = ch07.bootstrap_interval(d.tolist(), n_resamples=2_000, seed=trial)
        hits += low <= 0.5 <= high
    assert 0.88 <= hits / 200 <= 0.99


@pytest.mark.parametrize("wrong, hint", [
    (lambda d, n, s: tuple(np.percentile(d, [2.5, 97.5])), "resamples' \\*means\\*"),
    (lambda d, n, s: (np.mean(d) - 1.96 * np.std(d, ddof=1) / len(d) ** 0.5,
                      np.mean(d) + 1.96 * np.std(d, ddof=1) / len(d) ** 0.5), "t-interval"),
    (lambda d, n, s: (np.mean(d), np.mean(d) + 1e-9), "with\\* replacement"),
    (lambda d, n, s: ch07.bootstrap_interval(d, n, s)[::-1], "low comes first"),
    (lambda d, n, s: tuple(100 * x for x in ch07.bootstrap_interval(d, n, s)), "percentage points"),
])
def test_bootstrap_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch07.check_bootstrap_interval(wrong)


def test_solutions_print(capsys):
    for name in ch07.SOLUTIONS:
        ch07.solution(name)
    assert "def sign_flip_p_value" in capsys.readouterr().out


# -- CrowS-style probe ----------------------------------------------------------------------


def test_unmodified_positions():
    assert unmodified_positions([2, 10, 11, 12, 3], [2, 10, 20, 21, 12, 3]) == ([0, 1, 3, 4], [0, 1, 4, 5])


def test_course_pairs_ship_with_provenance():
    pairs = load_crows_pairs()
    assert len(pairs) >= 50 and len({p.bias_type for p in pairs}) >= 4
    assert all(p.sent_more != p.sent_less for p in pairs)


@pytest.fixture(scope="module")
def tiny_mlm():
    from tests.test_bias_cli import VOCAB
    import tempfile, pathlib

    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in VOCAB), encoding="utf-8")
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                                          initializer_range=0.5)).eval()
    from bertedu.tokenization import load_fast_tokenizer
    return model, load_fast_tokenizer(folder)


def test_pseudo_log_likelihood_equals_one_forward_pass_per_masked_token(tiny_mlm):
    model, tokenizer = tiny_mlm
    ids = tokenizer("my brother gave a wonderful performance .", return_tensors="pt")["input_ids"][0]
    positions = [1, 3, 4, 6]
    expected = 0.0
    for i in positions:  # the slow way: one masked copy at a time
        masked = ids.clone()
        masked[i] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(masked.unsqueeze(0)).prediction_logits[0, i]
        expected += torch.log_softmax(logits, -1)[ids[i]].item()
    assert pseudo_log_likelihood(model, ids, positions, tokenizer.mask_token_id) == pytest.approx(expected, abs=1e-5)


def test_crows_probe_counts_preferences(tiny_mlm):
    model, tokenizer = tiny_mlm
    pairs = [CrowsPair("my brother gave a wonderful performance .", "my sister gave a wonderful performance .", "gender"),
             CrowsPair("the man was boring .", "the woman was boring .", "gender"),
             CrowsPair("my american friend was awful .", "my mexican friend was awful .", "nationality")]
    result = crows_probe(model, tokenizer, pairs)
    assert result.n == 3
    assert result.n_more == sum(more > less for more, less in result.scores)
    assert sum(n for _, n in result.by_type.values()) == 3
    assert result.ci_low <= result.n_more / 3 <= result.ci_high
    # swapping the two sentences of every pair turns preferences around (no ties with random weights)
    swapped = crows_probe(model, tokenizer, [CrowsPair(p.sent_less, p.sent_more, p.bias_type) for p in pairs])
    assert swapped.n_more == 3 - result.n_more


# -- counterfactual data augmentation -------------------------------------------------------


def test_augment_counterfactual_doubles_with_labels():
    texts, labels = augment_counterfactual(["He was great.", "A dull film."], [1, 0])
    assert texts == ["He was great.", "She was great.", "A dull film.", "A dull film."]
    assert labels == [1, 1, 0, 0]


def test_cda_keeps_the_step_budget():
    settings = comparison_settings(quick=True)
    cda = cda_settings(settings)
    examples = [Example([0] * (5 + i % 50), i % 2) for i in range(settings.n_train)]
    doubled = [e for e in examples for _ in range(2)]
    baseline_steps = len(LengthBucketedBatches(examples, settings.batch_size)) * settings.epochs
    cda_steps = len(LengthBucketedBatches(doubled, settings.batch_size)) * cda.epochs
    assert abs(baseline_steps - cda_steps) <= 1  # e.g. 76 vs 75: the last partial batch of a pool
    with pytest.raises(ValueError, match="odd"):
        cda_settings(finetune_settings(quick=False).__class__(**{**vars(settings), "epochs": 3}))
