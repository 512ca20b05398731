"""Explanations: rollout by hand, gradients against finite differences, IG completeness, deletion."""
from __future__ import annotations

import pytest
import torch

from bertedu.explain import (
    METHODS,
    attention_rollout,
    baseline_ids,
    delete_words,
    deletion_experiment,
    explain_review,
    gradient_x_input,
    integrated_gradients,
    log_probability,
    rank_agreement,
    sum_by_word,
)


def test_rollout_is_the_product_of_the_mixed_layers():
    g = torch.Generator().manual_seed(0)
    layers = [torch.randn(1, 3, 4, 4, generator=g).softmax(-1) for _ in range(3)]
    mixed = [0.5 * a[0].mean(0) + 0.5 * torch.eye(4) for a in layers]  # rows already sum to 1
    expected = mixed[2] @ mixed[1] @ mixed[0]
    torch.testing.assert_close(attention_rollout(layers), expected)
    torch.testing.assert_close(attention_rollout(layers).sum(-1), torch.ones(4))
    plain = layers[2][0].mean(0) @ layers[1][0].mean(0) @ layers[0][0].mean(0)
    torch.testing.assert_close(attention_rollout(layers, residual=False), plain)


def test_words_are_summed_and_deleted_with_all_their_pieces():
    tokens = ["[CLS]", "un", "##fun", "##ny", "film", "!", "[SEP]"]
    words, scores = sum_by_word(tokens, torch.tensor([9.0, 1, 2, 3, 4, 5, 9]))
    assert words == ["unfunny", "film", "!"] and scores.tolist() == [6.0, 4.0, 5.0]
    ids = torch.arange(7)[None]
    assert delete_words(ids, tokens, [0]).tolist() == [[0, 4, 5, 6]]
    assert delete_words(ids, tokens, [1, 2]).tolist() == [[0, 1, 2, 3, 6]]


@pytest.fixture(scope="module")
def classifier():
    """The pretrained encoder with a seeded random head: explanations need no training."""
    from bertedu.checkpoint import default_checkpoint
    from bertedu.classification import BertForSequenceClassification
    from bertedu.tokenization import load_fast_tokenizer

    torch.manual_seed(0)
    folder = default_checkpoint()
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=2)
    torch.nn.init.normal_(model.classifier.weight, std=0.5)
    return model.eval(), load_fast_tokenizer(folder)


TEXT = "A dull, lifeless film with one wonderful scene."


def test_gradient_x_input_matches_finite_differences(classifier):
    model, tokenizer = classifier
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    scores = gradient_x_input(model, ids, target=1)  # |grad . e_t|
    embeddings = model.bert.embeddings.word_embeddings(ids).detach()
    eps = 1e-2
    for t in (1, 3, 6):
        up, down = embeddings.clone(), embeddings.clone()
        up[0, t] *= 1 + eps
        down[0, t] *= 1 - eps
        with torch.no_grad():
            both = log_probability(model, ids, torch.cat([up, down]), target=1)
        directional = (both[0] - both[1]) / (2 * eps)  # d/ds f(e_t * s) at s = 1 = grad . e_t
        assert scores[t].item() == pytest.approx(abs(directional.item()), rel=0.05, abs=1e-4)


def test_integrated_gradients_are_complete(classifier):
    model, tokenizer = classifier
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    baseline = baseline_ids(ids, [tokenizer.cls_token_id, tokenizer.sep_token_id], tokenizer.pad_token_id)
    assert baseline[0, 0] == tokenizer.cls_token_id and baseline[0, 1] == tokenizer.pad_token_id
    coarse = abs(integrated_gradients(model, ids, 0, baseline, steps=2)[1])
    attributions, fine = integrated_gradients(model, ids, 0, baseline, steps=32, batch_size=16)
    assert attributions.shape == (ids.shape[1],)
    with torch.no_grad():
        x = model.bert.embeddings.word_embeddings(torch.cat([ids, baseline]))
        ends = log_probability(model, ids, x, 0)
    assert abs(fine) < 0.05 * max(abs((ends[0] - ends[1]).item()), 0.1)
    assert abs(fine) <= coarse + 1e-6  # more steps, smaller gap


def test_explain_and_delete_on_real_reviews(classifier):
    model, tokenizer = classifier
    texts = ["Terrible. Boring plot, awful acting, I left early.", "A wonderful, moving film with great music."]
    explanations = [explain_review(model, tokenizer, text, steps=4) for text in texts]
    for e in explanations:
        assert set(e.word_scores) == set(METHODS)
        assert all(len(scores) == len(e.words) for scores in e.word_scores.values())
        assert 0.5 <= e.probability <= 1.0
    drops = deletion_experiment(model, explanations, ks=(1, 2), n_random=2, seed=0)
    assert set(drops) == {*METHODS, "random"} and all(d.shape == (2,) for d in drops.values())
    assert torch.equal(drops["random"], deletion_experiment(model, explanations, ks=(1, 2), n_random=2, seed=0)["random"])
    rho = rank_agreement(explanations, "attention rollout", "attention rollout")
    assert torch.allclose(rho, torch.ones(2))
