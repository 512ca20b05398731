"""bertedu.finetuning and bertedu.baselines: truncation, batching, training glue, analysis, real data."""
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from bertedu.checkpoint import default_checkpoint
from bertedu.classification import BertForSequenceClassification
from bertedu.errors import UserError
from bertedu.finetuning import (
    Example,
    FinetuneSettings,
    LengthBucketedBatches,
    TextError,
    Truncation,
    encode_reviews,
    encode_splits,
    encode_texts,
    finetune,
    finetune_settings,
    frozen_features,
    mean_pairwise_cosine,
    pad_collate,
    padding_fraction,
    predict_proba,
    representation_similarity,
    rescale_embeddings,
    set_attention_dropout,
    small_bert_classifier,
    small_bert_settings,
    truncate_head_tail,
    word_embedding_cosine,
    word_pieces,
)
from bertedu.metrics import accuracy_by_length, most_confident_errors
from bertedu.sentiment import merge_word_pieces
from bertedu.model import BertConfig
from bertedu.tokenization import load_fast_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_fast_tokenizer(default_checkpoint())


# -- truncation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, body, head, expected",
    [
        (10, 5, 2, [0, 1, 7, 8, 9]),  # head + tail
        (10, 5, 5, [0, 1, 2, 3, 4]),  # head only
        (10, 5, 0, [5, 6, 7, 8, 9]),  # tail only
        (4, 5, 2, [0, 1, 2, 3]),  # short enough: untouched
        (5, 5, 2, [0, 1, 2, 3, 4]),
    ],
)
def test_truncate_head_tail(n, body, head, expected):
    assert truncate_head_tail(list(range(n)), body, head) == expected


def test_truncation_settings_are_checked_and_fitted_to_a_smaller_model():
    assert Truncation(256, 64).tail_tokens == 190
    assert Truncation.head_only(128).describe() == "head only (126 tokens)"
    assert Truncation(512, 128).fit(128) == Truncation(128, 32)  # the same quarter kept from the head
    assert Truncation(128, 32).fit(512) == Truncation(128, 32)
    with pytest.raises(ValueError, match="head_tokens=300"):
        Truncation(256, 300)
    with pytest.raises(ValueError, match="max_length=2"):
        Truncation(2, 0)


def test_encoded_review_is_cls_head_tail_sep(tokenizer):
    text = " ".join(f"word{i}" for i in range(400)) + " but in the end it was a wonderful film"
    full = word_pieces(tokenizer, [text])[0]
    ids = encode_texts(tokenizer, [text], Truncation(64, 16))[0]
    assert len(full) > 62 and len(ids) == 64
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids[1:17] == full[:16] and ids[17:-1] == full[-46:]
    assert tokenizer.decode(ids[-9:-1]) == "in the end it was a wonderful film"
    short = encode_texts(tokenizer, ["A fine film."], Truncation(64, 16))[0]
    assert tokenizer.convert_ids_to_tokens(short) == ["[CLS]", "a", "fine", "film", ".", "[SEP]"]


def test_encode_splits_reads_every_split_the_same_way(tokenizer):
    from bertedu.data import Review, ReviewSet

    long = " ".join(f"word{i}" for i in range(200)) + " a wonderful film"
    train = ReviewSet([Review(long, 1, 9, 0), Review("Dull.", 0, 2, 1)], "train")
    test = ReviewSet([Review("A fine film.", 1, 8, 2)], "test")
    truncation = Truncation(32, 8)
    encoded = encode_splits(tokenizer, (train, test), truncation)
    assert [len(x) for x in encoded] == [2, 1]
    assert encoded[0] == encode_reviews(tokenizer, train.texts, train.labels, truncation)
    assert encoded[1] == encode_reviews(tokenizer, test.texts, test.labels, truncation)
    assert len(encoded[0][0].input_ids) == 32 and [e.label for e in encoded[0]] == [1, 0]


@pytest.mark.parametrize(
    "texts, message",
    [
        (["fine", ""], "Text 1 is empty"),
        (["   \n\t"], "Text 0 is empty or only whitespace"),
        (["\u200b\u200b"], "Text 0 has no tokens after cleaning"),
        (["ok", "\udcff bytes"], "Text 1 is not valid Unicode"),
        ([b"bytes"], "Text 0 is a bytes"),
    ],
)
def test_bad_texts_are_named(tokenizer, texts, message):
    with pytest.raises(TextError, match=message):
        word_pieces(tokenizer, texts)


def test_a_single_string_is_refused(tokenizer):
    with pytest.raises(ValueError, match=r"wrap it as \[text\]"):
        word_pieces(tokenizer, "a review")


# -- batches ---------------------------------------------------------------------------------


def examples_of_lengths(lengths, seed=0):
    rng = random.Random(seed)
    return [Example([2] + [rng.randrange(5, 100) for _ in range(n - 2)] + [3], rng.randrange(2)) for n in lengths]


def test_pad_collate_pads_to_the_longest_in_the_batch():
    batch = pad_collate([Example([2, 7, 3], 1), Example([2, 7, 8, 9, 3], 0)], pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 7, 3, 0, 0], [2, 7, 8, 9, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [1, 0]
    assert "labels" not in pad_collate([Example([2, 3])])
    with pytest.raises(ValueError, match="empty batch"):
        pad_collate([])


def test_length_buckets_cover_every_example_once_and_waste_little_padding():
    rng = random.Random(0)
    examples = examples_of_lengths([rng.randrange(20, 256) for _ in range(1000)])
    batches = LengthBucketedBatches(examples, batch_size=16, seed=0)
    n_batches = len(batches)
    assert n_batches == 63
    seen = sorted(id(e) for i in range(len(batches)) for e in batches[i])
    assert seen == sorted(id(e) for e in examples)
    shuffled = list(examples)
    rng.shuffle(shuffled)
    random_batches = [shuffled[i:i + 16] for i in range(0, len(shuffled), 16)]
    bucketed = [batches[i] for i in range(len(batches))]
    assert padding_fraction(random_batches) > 0.35
    assert padding_fraction(bucketed) < 0.05
    first_epoch = [list(map(id, b)) for b in bucketed]
    batches.set_epoch(1)
    assert len(batches) == n_batches
    assert [list(map(id, batches[i])) for i in range(len(batches))] != first_epoch  # regrouped
    batches.set_epoch(0)
    assert [list(map(id, batches[i])) for i in range(len(batches))] == first_epoch  # reproducible


# -- the model in use -----------------------------------------------------------------------

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**TINY), 2)


def test_predictions_come_back_in_input_order_whatever_the_batching():
    model = tiny_model().eval()
    examples = examples_of_lengths([30, 5, 17, 40, 9, 22, 3])
    by_batch = predict_proba(model, examples, batch_size=3)
    with torch.no_grad():
        one_by_one = np.concatenate([
            torch.softmax(model(torch.tensor([e.input_ids])).logits, -1).numpy() for e in examples])
    np.testing.assert_allclose(by_batch, one_by_one, atol=1e-5)


def test_frozen_mean_features_ignore_padding():
    model = tiny_model().bert.eval()
    examples = examples_of_lengths([30, 6, 17])
    together = frozen_features(model, examples, batch_size=3)
    alone = frozen_features(model, examples[1:2], batch_size=1)
    np.testing.assert_allclose(together["mean"][1], alone["mean"][0], atol=1e-5)
    np.testing.assert_allclose(together["cls"][1], alone["cls"][0], atol=1e-5)
    assert together["mean"].shape == (3, 32)


def test_mean_pairwise_cosine_matches_the_full_matrix():
    from sklearn.metrics.pairwise import cosine_similarity

    vectors = np.random.default_rng(0).normal(size=(40, 8)) + 0.5  # a shared offset: positive similarity
    matrix = cosine_similarity(vectors)
    expected = (matrix.sum() - np.trace(matrix)) / (40 * 39)
    assert mean_pairwise_cosine(vectors) == pytest.approx(expected, abs=1e-12)
    assert 0.1 < expected < 0.9
    assert mean_pairwise_cosine(np.tile([[1.0, 2.0, 3.0]], (5, 1)) * np.arange(1, 6)[:, None]) == pytest.approx(1.0)
    assert mean_pairwise_cosine(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="N >= 2"):
        mean_pairwise_cosine(np.ones((1, 4)))


def test_word_embedding_cosine_leaves_out_the_special_tokens_and_sees_a_shared_direction():
    model = tiny_model().bert
    weight = model.embeddings.word_embeddings.weight.detach().numpy()
    assert word_embedding_cosine(model, 5) == pytest.approx(mean_pairwise_cosine(weight[5:]), abs=1e-9)
    assert abs(word_embedding_cosine(model, 5)) < 0.05  # random initialisation: no shared direction
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[5:] += 0.05  # every word piece leans one way
        model.embeddings.word_embeddings.weight[:5] = 0.0  # [PAD] and friends: would divide by zero
    assert word_embedding_cosine(model, 5) > 0.5


def test_small_bert_classifier_is_random_or_the_saved_encoder_with_a_new_head(tmp_path):
    config = BertConfig(**TINY)
    torch.manual_seed(0)
    random_weights = small_bert_classifier(config, None)
    torch.manual_seed(0)
    assert torch.equal(small_bert_classifier(config, None).bert.embeddings.word_embeddings.weight,
                       random_weights.bert.embeddings.word_embeddings.weight)  # seeded: the same draw
    random_weights.bert.save_pretrained(tmp_path)
    torch.manual_seed(1)
    loaded = small_bert_classifier(config, tmp_path)
    for (name, a), b in zip(random_weights.bert.state_dict().items(), loaded.bert.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded.classifier.weight.shape == (2, TINY["hidden_size"])
    assert not torch.equal(loaded.classifier.weight, random_weights.classifier.weight)  # a new head


def test_new_attention_makes_every_row_uniform_and_keeps_the_rest_of_the_pretrained_encoder():
    """The shipped small BERT attends sharply (mean row entropy 0.32 and 0.46 of uniform on this
    review); after ``reinitialize_attention`` every row is nearly uniform, and only the attention
    sublayers changed."""
    import math

    from bertedu.head_stats import row_entropy
    from bertedu.pretraining import shipped_small_bert

    folder = shipped_small_bert()
    config = BertConfig.from_pretrained(folder)
    tokenizer = load_fast_tokenizer(folder)
    text = "The acting was wooden, the plot made no sense, and the ending dragged on forever. " * 3
    batch = tokenizer(text, return_tensors="pt")

    def row_entropies(model):  # per layer: the mean entropy of an attention row, as a share of ln T
        with torch.no_grad():
            attentions = model.eval()(batch["input_ids"], output_attentions=True).attentions
        T = batch["input_ids"].shape[1]
        return [float(row_entropy(p).mean() / math.log(T)) for p in attentions]

    torch.manual_seed(0)
    loaded = small_bert_classifier(config, folder)
    torch.manual_seed(0)
    fresh = small_bert_classifier(config, folder, new_attention=True)
    torch.manual_seed(0)
    again = small_bert_classifier(config, folder, new_attention=True)
    assert max(row_entropies(loaded)) < 0.6
    assert min(row_entropies(fresh)) > 0.99
    changed = set()
    for (name, a), b, c in zip(loaded.state_dict().items(), fresh.state_dict().values(), again.state_dict().values()):
        assert torch.equal(b, c), name  # seeded: the same draw
        if not torch.equal(a, b):
            changed.add(name)
    # W_Q, W_K, W_V, W^O with their biases and the sublayer's LayerNorm, in both layers; nothing else
    attention = {name for name in loaded.state_dict() if ".attention." in name}
    assert len(attention) == 2 * 10 and changed == attention
    torch.manual_seed(0)
    rescaled = small_bert_classifier(config, folder, new_attention=True, rescale=True)  # the same draw, then smaller tables
    word = rescaled.bert.embeddings.word_embeddings.weight
    assert float(word.detach().pow(2).mean().sqrt()) == pytest.approx(config.initializer_range, rel=1e-5)
    for (name, a), b in zip(fresh.state_dict().items(), rescaled.state_dict().values()):
        assert torch.equal(a, b) == ("_embeddings." not in name), name


def test_small_bert_of_kind_is_the_classifier_each_kind_names(tmp_path):
    """Each kind of weights builds what its flags say, draw for draw; "random" reads no folder;
    a kind that loads weights without a folder, or an unknown kind, is refused."""
    from bertedu.finetuning import SMALL_BERT_SCHEDULES, small_bert_of_kind

    config = BertConfig(**TINY)
    torch.manual_seed(5)
    saved = small_bert_classifier(config, None)
    with torch.no_grad():
        saved.bert.embeddings.word_embeddings.weight.mul_(3)  # larger than BERT's 0.02, so rescaling shows
    saved.bert.save_pretrained(tmp_path)
    flags = {"random": (None, False, False), "pretrained": (tmp_path, False, False),
             "new-attention": (tmp_path, True, False), "rescaled": (tmp_path, True, True),
             "shipped": (tmp_path, False, False)}
    assert set(flags) == set(SMALL_BERT_SCHEDULES)
    weights = {}
    for kind, (folder, new_attention, rescale) in flags.items():
        torch.manual_seed(0)
        model = small_bert_of_kind(kind, config, tmp_path)
        weights[kind] = model.state_dict()
        torch.manual_seed(0)
        reference = small_bert_classifier(config, folder, new_attention=new_attention, rescale=rescale)
        for (name, a), b in zip(reference.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b), (kind, name)
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(weights["pretrained"][query], saved.state_dict()[query])
    assert not torch.equal(weights["new-attention"][query], weights["pretrained"][query])
    with pytest.raises(UserError, match="'huge'; choose one of random, pretrained"):
        small_bert_of_kind("huge", config, tmp_path)
    with pytest.raises(UserError, match="'shipped' are loaded from a saved encoder: pass its folder"):
        small_bert_of_kind("shipped", config, None)


def test_rescale_embeddings_keeps_the_forward_pass_and_gives_the_word_table_bert_s_initial_size():
    model = tiny_model().eval()
    embeddings = model.bert.embeddings
    tables = ("word_embeddings", "position_embeddings", "token_type_embeddings")
    with torch.no_grad():  # as after pre-training: larger than at initialisation, each table its own size
        embeddings.word_embeddings.weight.mul_(27.0)
        embeddings.position_embeddings.weight.mul_(60.0)
        embeddings.token_type_embeddings.weight.add_(0.3)
    before = {name: p.clone() for name, p in model.state_dict().items()}
    ids = torch.tensor([[2, 17, 45, 9, 3, 0], [2, 60, 3, 70, 81, 3]])
    segments = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    mask = (ids != 0).long()
    labels = torch.tensor([0, 1])

    def word_gradient():  # (V, H): d loss / d word table
        model.zero_grad()
        model(ids, mask, segments, labels=labels).loss.backward()
        return model.bert.embeddings.word_embeddings.weight.grad.clone()

    with torch.no_grad():
        logits = model(ids, mask, segments).logits
    gradient = word_gradient()
    word_rms = float(before["bert.embeddings.word_embeddings.weight"].pow(2).mean().sqrt())

    factor = rescale_embeddings(model)

    assert word_rms == pytest.approx(27 * 0.02, rel=0.05)
    assert factor == pytest.approx(0.02 / word_rms, rel=1e-6)
    assert float(embeddings.word_embeddings.weight.pow(2).mean().sqrt()) == pytest.approx(0.02, rel=1e-5)
    for name, value in model.state_dict().items():
        if any(f"embeddings.{table}." in name for table in tables):  # all three, by the one factor
            torch.testing.assert_close(value, before[name] * factor)
        else:
            assert torch.equal(value, before[name]), name
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask, segments).logits, logits, rtol=0, atol=1e-5)
    # the gradient grows by 1 / factor, so Adam's steps (about the rate each) are larger relative to the table
    assert gradient.abs().max() > 0
    torch.testing.assert_close(word_gradient(), gradient / factor, rtol=1e-3, atol=1e-9)
    with torch.no_grad():
        embeddings.word_embeddings.weight.zero_()
    with pytest.raises(UserError, match="all zero"):
        rescale_embeddings(model)


def test_representation_similarity_reads_real_tokens_and_sees_a_collapse():
    model = tiny_model().bert.eval()
    examples = examples_of_lengths([30, 6, 17, 9])
    measured = representation_similarity(model, examples, batch_size=2)
    with torch.no_grad():  # the same numbers, one review at a time (no padding at all)
        hidden = [model(torch.tensor([e.input_ids])).last_hidden_state[0].numpy() for e in examples]
    assert measured["tokens"] == pytest.approx(mean_pairwise_cosine(np.concatenate(hidden)), abs=1e-5)
    assert measured["cls"] == pytest.approx(mean_pairwise_cosine(np.stack([h[0] for h in hidden])), abs=1e-5)
    assert measured["tokens"] < 0.9
    final_norm = model.encoder.layer[-1].output.LayerNorm
    with torch.no_grad():  # the last LayerNorm outputs its bias only: every vector the same
        final_norm.weight.zero_()
        final_norm.bias.fill_(0.3)
    collapsed = representation_similarity(model, examples, batch_size=2)
    assert collapsed["tokens"] == pytest.approx(1.0) and collapsed["cls"] == pytest.approx(1.0)


def synthetic_task(**changes):
    """Positive texts use tokens 10-69, negative ones 40-99: 512 train, 128 validation examples."""
    rng = random.Random(0)

    def make(n):
        out = []
        for _ in range(n):
            label = rng.randrange(2)
            body = [rng.randrange(10, 70) if label else rng.randrange(40, 100) for _ in range(rng.randrange(4, 30))]
            out.append(Example([2, *body, 3], label))
        return out

    settings = FinetuneSettings(n_train=512, n_validation=128, n_test=0, truncation=Truncation(64, 16),
                                learning_rate=3e-3, epochs=3, batch_size=32, warmup_ratio=0.1)
    return make(512), make(128), replace(settings, **changes)


def test_finetune_learns_a_synthetic_task_with_the_chapter4_loop():
    """The loop, bucketing and best-epoch selection together."""
    train_examples, validation_examples, settings = synthetic_task()
    model = tiny_model()
    history = finetune(model, train_examples, validation_examples, settings, device=torch.device("cpu"),
                       progress=False)
    assert [int(row["step"]) for row in history.evals] == [16, 32, 48]  # once per epoch
    assert history.best["accuracy"] == max(row["accuracy"] for row in history.evals)
    assert history.best["accuracy"] > 0.95
    accuracy = (predict_proba(model, validation_examples).argmax(1) == [e.label for e in validation_examples]).mean()
    assert accuracy == pytest.approx(history.best["accuracy"])  # the best epoch's weights are back


def test_finetune_in_cpu_bf16_learns_and_predicts_like_float32(monkeypatch):
    """``cpu_bf16`` autocasts each step, not the whole loop: inside one long autocast region
    torch caches the bf16 copy of every weight, so the forward would keep the first step's
    weights and the model would not learn (chapter 5's first try of bf16 did that: 51.8%)."""
    from bertedu import settings as settings_module

    monkeypatch.setattr(settings_module, "native_cpu_bf16", lambda: True)  # bf16 runs on any CPU, emulated
    train_examples, validation_examples, settings = synthetic_task(cpu_bf16=True)
    assert settings.training_config().cpu_bf16
    model = tiny_model()
    history = finetune(model, train_examples, validation_examples, settings, device=torch.device("cpu"),
                       progress=False)
    assert history.best["accuracy"] > 0.95
    in_bf16 = predict_proba(model, validation_examples, cpu_bf16=True)
    in_float32 = predict_proba(model, validation_examples)
    assert not np.array_equal(in_bf16, in_float32)  # it did run in bf16
    assert np.abs(in_bf16 - in_float32).max() < 0.05
    assert (in_bf16.argmax(1) == in_float32.argmax(1)).mean() > 0.95
    features = frozen_features(model.bert, validation_examples[:8], cpu_bf16=True)
    assert np.allclose(features["mean"], frozen_features(model.bert, validation_examples[:8])["mean"], atol=0.1)


def test_quick_and_full_settings():
    from bertedu.settings import is_quick

    mode_before = is_quick()
    quick, full = finetune_settings(quick=True), finetune_settings(quick=False)
    assert is_quick() == mode_before  # asking for a mode's settings does not switch mode
    assert (quick.n_test, full.n_test) == (1_000, 25_000)
    assert full.n_train + full.n_validation == 25_000  # every train review is used
    assert full.truncation == Truncation(512, 128)  # Sun et al.'s head 128 + tail 382
    assert (quick.attention_dropout, full.attention_dropout) == (0.0, None)  # None: the checkpoint's 0.1
    assert (quick.epochs, full.epochs) == (1, 3) and quick.cpu_bf16 and full.cpu_bf16
    from bertedu.mitigation import comparison_settings
    from bertedu.parameter_efficient import peft_settings

    # chapters 5b and 7 were measured in float32 and stay there
    assert not peft_settings("lora", quick=True).cpu_bf16 and not comparison_settings(quick=True).cpu_bf16


def test_small_bert_settings_fit_its_positions_and_keep_the_rest():
    quick = finetune_settings(quick=True)
    small = small_bert_settings(quick, max_position_embeddings=128)
    assert small.truncation == Truncation(128, 32)  # the same quarter from the head
    assert (small.epochs, small.learning_rate) == (4, 3e-4)  # random weights: the sweep's winner
    shipped = small_bert_settings(quick, max_position_embeddings=128, weights="shipped")
    assert (shipped.epochs, shipped.learning_rate) == (4, 1e-3) and shipped.truncation == small.truncation
    with pytest.raises(UserError, match="Unknown small-BERT weights 'tiny'"):
        small_bert_settings(quick, 128, weights="tiny")
    assert (small.n_train, small.n_test, small.batch_size) == (quick.n_train, quick.n_test, quick.batch_size)
    assert not small.cpu_bf16 and not shipped.cpu_bf16  # their schedules were chosen in float32


def test_attention_dropout_switch_reaches_every_layer_and_only_attention():
    """With hidden dropout off, a model in train mode is deterministic exactly when attention dropout is 0."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**{**TINY, "hidden_dropout_prob": 0.0}), 2)
    input_ids = torch.randint(5, TINY["vocab_size"], (2, 12))
    model.eval()
    expected = model(input_ids).logits
    model.train()
    assert not torch.allclose(model(input_ids).logits, expected)  # attention dropout 0.1 is at work
    set_attention_dropout(model, 0.0)
    torch.testing.assert_close(model(input_ids).logits, expected)
    assert model.config.attention_probs_dropout_prob == 0.0  # a saved config tells how it was trained
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        set_attention_dropout(model, 1.0)


def test_finetune_applies_the_settings_attention_dropout():
    model = tiny_model()
    settings = FinetuneSettings(n_train=8, n_validation=4, n_test=0, truncation=Truncation(64, 16),
                                learning_rate=1e-3, epochs=1, batch_size=4, attention_dropout=0.0)
    finetune(model, examples_of_lengths([5, 9, 12, 7, 6, 8, 10, 11]), examples_of_lengths([5, 6, 7, 8]), settings,
             device=torch.device("cpu"), progress=False)
    assert all(layer.attention.self.dropout.p == 0.0 for layer in model.bert.encoder.layer)


# -- analysis ----------------------------------------------------------------------------------


def test_most_confident_errors_and_accuracy_by_length():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95], [0.3, 0.7]])
    labels = [1, 1, 1, 0, 0]
    assert most_confident_errors(probabilities, labels, k=3) == [3, 0, 4]
    rows = accuracy_by_length([10, 50, 120, 300, 700], [True, False, True, True, False], edges=[0, 100, 500])
    assert rows == [{"bin": "0-99", "n": 2, "accuracy": 0.5}, {"bin": "100-499", "n": 2, "accuracy": 1.0},
                    {"bin": "500+", "n": 1, "accuracy": 0.0}]


def test_merge_word_pieces_sums_weights():
    words, weights = merge_word_pieces(["un", "##watch", "##able", "film"], [0.1, 0.2, 0.1, 0.2])
    assert words == ["unwatchable", "film"]
    assert weights == pytest.approx([2 / 3, 1 / 3])


# -- real data ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imdb(imdb_archive):
    from bertedu.data import load_imdb

    return load_imdb("train", n=1_200, seed=0), load_imdb("test", n=400, seed=0)


def test_tfidf_baseline_on_real_reviews(imdb):
    from bertedu.baselines import fit_tfidf_baseline

    train, test = imdb
    baseline = fit_tfidf_baseline(train.texts[:1000], train.labels[:1000], train.texts[1000:], train.labels[1000:])
    accuracy = (baseline.predict(test.texts) == np.array(test.labels)).mean()
    assert baseline.C in baseline.validation_accuracy
    assert 0.75 < accuracy < 0.95, accuracy


@pytest.mark.slow
def test_fine_tuning_minilm_on_real_reviews(imdb, tokenizer):
    """A small but real run: 600 reviews, 128 tokens, one epoch, scored on 400 test reviews
    (78% here; chapter 5's quick mode, with 2,000 reviews and 256 tokens, reaches 88%)."""
    train, test = imdb
    truncation = Truncation(128, 32)
    settings = FinetuneSettings(n_train=600, n_validation=100, n_test=400, truncation=truncation,
                                learning_rate=1e-4, epochs=1, batch_size=8)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    test_examples = encode_reviews(tokenizer, test.texts, test.labels, truncation)
    before = (predict_proba(model, test_examples).argmax(1) == np.array(test.labels)).mean()
    finetune(model, encode_reviews(tokenizer, train.texts[:600], train.labels[:600], truncation),
             encode_reviews(tokenizer, train.texts[1000:1100], train.labels[1000:1100], truncation),
             settings, device=torch.device("cpu"), progress=False)
    accuracy = (predict_proba(model, test_examples).argmax(1) == np.array(test.labels)).mean()
    assert before < 0.65 and accuracy > 0.74, (before, accuracy)


def test_small_bert_schedules_are_the_sweeps_winners():
    """SMALL_BERT_SCHEDULES must hold what benchmarks/small_bert_sweep.txt chose on validation,
    and for chapter 4's run ("pretrained": as saved, "rescaled") what quick_run_levers.txt's
    sweeps chose on that run as it is today (positions at 0.05)."""
    from bertedu.finetuning import SMALL_BERT_SCHEDULES
    from bertedu.stored_results import benchmarks_dir, small_bert_schedules

    assert small_bert_schedules(benchmarks_dir()) == SMALL_BERT_SCHEDULES


def test_an_installed_package_without_benchmarks_says_where_to_read_them(monkeypatch, tmp_path):
    """Installed as a wheel, the package has no benchmarks/ beside it: benchmarks_dir() is None
    and the notebooks print not_installed(name), which names the table to read instead."""
    import bertedu
    from bertedu.stored_results import benchmarks_dir, not_installed

    assert benchmarks_dir() is not None and (benchmarks_dir() / "peft_sweep.txt").is_file()
    monkeypatch.setattr(bertedu, "__file__", str(tmp_path / "site-packages" / "bertedu" / "__init__.py"))
    assert benchmarks_dir() is None
    assert not_installed("peft_sweep.txt") == ("benchmarks/ is not installed with the package: "
                                               "see benchmarks/peft_sweep.txt in the course repository.")


def test_stored_learning_curves_are_the_benchmark_tables_chapter_5a_reads():
    """Chapter 5a's plot of the learning curve: five seeds per point, four sizes per kind, the
    means its prose quotes; where two tables of small_bert_curve.txt have a kind, the first gives
    it (the third table's new-attention rows, 63.8% at 500 labels, are another run's)."""
    from bertedu.stored_results import benchmarks_dir, small_bert_curves

    curves = small_bert_curves(benchmarks_dir())
    means = {kind: {n: round(float(np.mean(accuracies)), 1) for n, accuracies in points.items()}
             for kind, points in curves.items()}
    assert means == {"random": {200: 50.7, 500: 52.1, 1_000: 66.8, 2_000: 77.2},
                     "new-attention": {200: 50.2, 500: 59.8, 1_000: 70.5, 2_000: 76.1},
                     "rescaled": {200: 50.0, 500: 60.0, 1_000: 73.1, 2_000: 77.3},
                     "shipped": {200: 76.3, 500: 77.0, 1_000: 79.5, 2_000: 81.8}}
    assert {len(accuracies) for points in curves.values() for accuracies in points.values()} == {5}
    # seed 0 of 2,000 labels is chapter 5a's rows 2 and 4 (random weights 77.7%, shipped 81.7%)
    assert (curves["random"][2_000][0], curves["shipped"][2_000][0]) == (77.7, 81.7)
    assert small_bert_curves(benchmarks_dir(), seeds=3)["rescaled"][500] == curves["rescaled"][500][:3]
