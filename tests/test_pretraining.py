"""Chapter 4's pre-training pieces: sentences, NSP pairs, the dataset, BertForPreTraining."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bertedu.errors import UserError
from bertedu.model import BertConfig, BertModel
from bertedu.pretraining import (
    IS_NEXT,
    NOT_NEXT,
    BertForPreTraining,
    SegmentPair,
    evaluate_pretraining,
    fill_mask,
    make_pairs,
    pretraining_settings,
    split_sentences,
)
from bertedu.pretraining_data import PretrainingDataset, encode_pair

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import SEQ_LEN, VOCAB, tiny_data, tiny_model  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# --------------------------------------------------------------------------- sentences


def test_split_sentences():
    text = ("I loved it! Mr. Smith plays the lead. Was it good? Yes... \"Great\" said J. R. Bob. "
            "the end is lowercase. 10 stars.\nA new paragraph without a full stop")
    assert split_sentences(text) == [
        "I loved it!", "Mr. Smith plays the lead.", "Was it good?", "Yes...",
        "\"Great\" said J. R. Bob. the end is lowercase.",  # no capital after "Bob.": no split
        "10 stars.", "A new paragraph without a full stop",
    ]
    assert split_sentences("  \n\n ") == []


# --------------------------------------------------------------------------- NSP pairs


def numbered_documents(n_documents=60, seed=0):
    """Token id = 1000 * document + position in the document: pairs reveal their origin."""
    rng = random.Random(seed)
    documents = []
    for d in range(n_documents):
        position, sentences = 0, []
        for _ in range(rng.randint(1, 12)):
            length = rng.randint(1, 25)
            sentences.append([1000 * d + position + i for i in range(length)])
            position += length
        documents.append(sentences)
    return documents


def test_pairs_are_half_true_continuations_and_fit_the_length():
    documents = numbered_documents(400)
    pairs = make_pairs(documents, max_seq_length=48, seed=0)
    assert len(pairs) > 500
    not_next = sum(p.is_random_next for p in pairs) / len(pairs)
    assert not_next == pytest.approx(0.5, abs=0.05)
    for pair in pairs:
        assert pair.tokens_a and pair.tokens_b
        assert len(pair.tokens_a) + len(pair.tokens_b) <= 48 - 3
        doc_a, doc_b = pair.tokens_a[0] // 1000, pair.tokens_b[0] // 1000
        # Each segment is contiguous text from one document (truncation trims the ends only).
        for segment in (pair.tokens_a, pair.tokens_b):
            assert segment == list(range(segment[0], segment[0] + len(segment)))
        if pair.is_random_next:
            assert doc_b != doc_a
        else:  # B starts right where A ends
            assert doc_b == doc_a and pair.tokens_b[0] >= pair.tokens_a[-1] + 1


def test_pairs_are_packed_to_the_maximum_length():
    pairs = make_pairs(numbered_documents(400), max_seq_length=48, seed=0)
    lengths = torch.tensor([len(p.tokens_a) + len(p.tokens_b) for p in pairs], dtype=torch.float)
    assert (lengths == 45).float().mean() > 0.4  # most pairs fill the sequence...
    assert lengths.mean() > 30  # ...and 10% aim shorter on purpose, as in BERT


def test_encode_pair_layout():
    encoded = encode_pair(SegmentPair([10, 11], [20, 21, 22], True), VOCAB, max_seq_length=10)
    assert encoded["input_ids"].tolist() == [2, 10, 11, 3, 20, 21, 22, 3, 0, 0]
    assert encoded["token_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert encoded["attention_mask"].tolist() == [1] * 8 + [0, 0]
    assert int(encoded["next_sentence_label"]) == NOT_NEXT
    with pytest.raises(ValueError, match="max_seq_length"):
        encode_pair(SegmentPair([10] * 5, [20] * 5, False), VOCAB, max_seq_length=10)


def test_dataset_masks_dynamically_and_reproducibly():
    data = tiny_data()
    first = data[3]
    assert set(first) == {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label"}
    assert torch.equal(first["input_ids"], data[3]["input_ids"])  # same epoch: same mask
    data.set_epoch(1)
    assert not torch.equal(first["labels"], data[3]["labels"])  # new epoch: new mask
    padding = first["attention_mask"] == 0
    assert bool((first["labels"][padding] == -100).all()) and bool((first["input_ids"][padding] == 0).all())
    assert int(data.tensors["next_sentence_label"].eq(IS_NEXT).sum()) > 0.3 * len(data)


# --------------------------------------------------------------------------- the model


def small_config(**overrides):
    return BertConfig(**{"vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "intermediate_size": 64, "max_position_embeddings": 40, **overrides})


def random_batch(config, batch=3, length=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[0, 12:] = 0
    token_type_ids = (torch.arange(length) >= 7).long().expand(batch, -1).clone()
    labels = torch.full((batch, length), -100)
    labels[:, [2, 5, 9]] = input_ids[:, [2, 5, 9]]
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                labels=labels, next_sentence_label=torch.tensor([0, 1, 1]))


def test_heads_shapes_tying_and_gather_trick():
    config = small_config()
    torch.manual_seed(0)
    model = BertForPreTraining(config).eval()
    batch = random_batch(config)
    full = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert full.prediction_logits.shape == (3, 16, 120) and full.seq_relationship_logits.shape == (3, 2) and full.loss is None
    out = model(**batch)
    selected = batch["labels"] != -100
    assert out.prediction_logits.shape == (9, 120)
    torch.testing.assert_close(out.prediction_logits, full.prediction_logits[selected])
    torch.testing.assert_close(out.loss, out.mlm_loss + out.nsp_loss)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    # An untrained model guesses uniformly: MLM loss ~ ln V, NSP loss ~ ln 2.
    assert out.mlm_loss.item() == pytest.approx(torch.log(torch.tensor(120.0)).item(), abs=0.3)
    assert out.nsp_loss.item() == pytest.approx(0.693, abs=0.1)


def test_matches_transformers_bert_for_pretraining(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = small_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    ours = BertForPreTraining(config).eval()
    with torch.no_grad():  # make the heads' biases nonzero, so that they are compared too
        for parameter in ours.cls.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    ours.save_pretrained(tmp_path)
    theirs = transformers.BertForPreTraining.from_pretrained(tmp_path).eval()
    batch = random_batch(config)
    with torch.no_grad():
        reference = theirs(**batch)
        full = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        out = ours(**batch)
    torch.testing.assert_close(full.prediction_logits, reference.prediction_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(full.seq_relationship_logits, reference.seq_relationship_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.loss, reference.loss, rtol=1e-4, atol=1e-4)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = BertForPreTraining(small_config()).eval()
    vocab = tmp_path / "source-vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n")
    model.save_pretrained(tmp_path / "saved", vocab_file=vocab)
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    loaded = BertForPreTraining.from_pretrained(tmp_path / "saved")
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    batch = random_batch(model.config)
    torch.testing.assert_close(loaded(**batch).loss, model(**batch).loss)
    encoder = BertModel.from_pretrained(tmp_path / "saved")  # what chapter 5 starts from
    torch.testing.assert_close(encoder(batch["input_ids"]).last_hidden_state,
                               model.bert(batch["input_ids"]).last_hidden_state)
    with pytest.raises(ValueError, match="BertForPreTraining"):
        BertModel(model.config).save_pretrained(tmp_path / "encoder-only")
        BertForPreTraining.from_pretrained(tmp_path / "encoder-only")


def test_evaluation_metrics_on_a_tiny_model():
    model = tiny_model().eval()
    metrics = evaluate_pretraining(model, tiny_data(), batch_size=16)
    assert set(metrics) == {"mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"}
    assert metrics["mlm_loss"] == pytest.approx(torch.log(torch.tensor(60.0)).item(), abs=0.3)
    assert 0.0 <= metrics["mlm_accuracy"] < 0.1 and 0.3 < metrics["nsp_accuracy"] < 0.7


def test_mlm_accuracy_by_input_separates_copying_from_context():
    """A model that copies its input is right exactly at the unchanged positions (about 10% of those asked)."""
    from types import SimpleNamespace

    from bertedu.pretraining import INPUT_KINDS, mlm_accuracy_by_input

    class Copier(torch.nn.Module):  # predicts, at every asked position, the token it was shown
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, labels, **_):
            shown = input_ids[labels != -100]  # (N,)
            return SimpleNamespace(prediction_logits=torch.nn.functional.one_hot(shown, VOCAB.vocab_size).float())

    data = tiny_data()
    split = mlm_accuracy_by_input(Copier(), data, batch_size=16)
    assert list(split) == list(INPUT_KINDS)
    assert split["[MASK]"]["accuracy"] == 0.0 and split["random word"]["accuracy"] == 0.0
    assert split["unchanged"]["accuracy"] == 1.0
    total = sum(kind["count"] for kind in split.values())
    assert total == int((data.labels != -100).sum())
    assert split["[MASK]"]["count"] / total == pytest.approx(0.8, abs=0.05)
    assert split["unchanged"]["count"] / total == pytest.approx(0.1, abs=0.05)
    # the parts add up to evaluate_pretraining's accuracy for a real model
    model = tiny_model().eval()
    split = mlm_accuracy_by_input(model, data)
    overall = sum(kind["accuracy"] * kind["count"] for kind in split.values()) / total
    assert overall == pytest.approx(evaluate_pretraining(model, data)["mlm_accuracy"], abs=1e-9)


def test_mlm_bias_starts_at_the_unigram_prior():
    """init_mlm_bias: the untrained model's MLM loss is the targets' unigram cross-entropy, not ln V."""
    from bertedu.pretraining import init_mlm_bias, unigram_log_prior

    rng = random.Random(0)  # a skewed 'language': token 5 half the time, 54 others share the rest
    documents = [[[5 if rng.random() < 0.5 else rng.randrange(6, 60) for _ in range(rng.randint(3, 9))]
                  for _ in range(rng.randint(2, 8))] for _ in range(60)]
    data = PretrainingDataset(make_pairs(documents, max_seq_length=SEQ_LEN, seed=0), VOCAB, max_seq_length=SEQ_LEN)
    prior = unigram_log_prior(data.tensors["input_ids"], VOCAB.vocab_size, VOCAB.special_ids)  # (V,)
    assert prior.shape == (60,) and prior.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert prior.argmax().item() == 5 and prior[5].exp().item() == pytest.approx(0.5, abs=0.03)
    assert torch.all(prior[list(VOCAB.special_ids)] == prior.min())  # never asked for: the floor

    model = tiny_model().eval()
    before = evaluate_pretraining(model, data)["mlm_loss"]
    init_mlm_bias(model, data)
    after = evaluate_pretraining(model, data)["mlm_loss"]
    targets = data.labels[data.labels != -100]
    assert before == pytest.approx(torch.log(torch.tensor(60.0)).item(), abs=0.3)  # uniform guessing
    assert after == pytest.approx(-prior[targets].mean().item(), abs=0.1)  # the prior's cross-entropy
    assert after < before - 1.0
    with pytest.raises(ValueError, match="has none"):  # no pairs, no frequencies: say so, not KeyError
        init_mlm_bias(tiny_model(), PretrainingDataset([], VOCAB, max_seq_length=SEQ_LEN))


def test_new_pretraining_model_is_seeded_and_starts_at_the_prior():
    """new_pretraining_model: the same seed gives the same weights; the bias is the prior or zero."""
    from dataclasses import replace

    from bertedu.pretraining import new_pretraining_model, pretraining_settings, unigram_log_prior

    settings = replace(pretraining_settings(quick=True), vocab_size=VOCAB.vocab_size, max_seq_length=SEQ_LEN,
                       hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    data = tiny_data()
    first, again = new_pretraining_model(settings, data), new_pretraining_model(settings, data)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    prior = unigram_log_prior(data.tensors["input_ids"], VOCAB.vocab_size, VOCAB.special_ids)
    torch.testing.assert_close(first.cls.predictions.bias, prior)
    zero = new_pretraining_model(replace(settings, mlm_bias_prior=False), data)
    assert torch.count_nonzero(zero.cls.predictions.bias) == 0
    other = new_pretraining_model(replace(settings, seed=1), data)
    assert not torch.equal(other.bert.embeddings.word_embeddings.weight, first.bert.embeddings.word_embeddings.weight)


def test_local_attention_init_looks_at_the_neighbours(tmp_path):
    """init_local_attention: a fresh model's attention is nearly uniform; after it, a token's
    nearest positions get most of the weight, and the model still saves and loads as a BERT."""
    from dataclasses import replace

    from bertedu.pretraining import init_local_attention, new_pretraining_model, sinusoidal_positions

    table = sinusoidal_positions(128, 128)  # (T, H)
    similarity = table @ table[60]  # (T,) the same at equal distances, highest at distance 0
    assert similarity.argmax().item() == 60 and similarity[59].item() == pytest.approx(similarity[61].item(), rel=1e-4)
    assert similarity[61] > similarity[64] > similarity[90]
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths work too

    settings = replace(pretraining_settings(quick=True), mlm_bias_prior=False)

    def near_weight(model):  # attention weight within 2 positions of the query, mean over queries, layer 0
        ids = torch.randint(5, 8000, (4, 128), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            probs = model.bert(ids, output_attentions=True).attentions[0]  # (B, nh, T, T)
        distance = (torch.arange(128)[:, None] - torch.arange(128)[None, :]).abs()  # (T, T)
        return probs[..., distance <= 2].sum(-1).mean().item() / 128

    plain = new_pretraining_model(replace(settings, local_attention=False), tiny_data()).eval()
    local = new_pretraining_model(settings, tiny_data()).eval()
    assert near_weight(plain) < 0.06  # 5 of 128 positions: about 4% for uniform attention
    assert near_weight(local) > 0.3  # 0.47 here: more than ten times uniform
    for name in ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.intermediate.dense.weight"):
        assert torch.equal(plain.state_dict()[name], local.state_dict()[name])  # only the starting attention differs
    local.save_pretrained(tmp_path / "local")
    again = BertForPreTraining.from_pretrained(tmp_path / "local")
    torch.testing.assert_close(again.bert.embeddings.position_embeddings.weight,
                               local.bert.embeddings.position_embeddings.weight)
    with pytest.raises(ValueError, match="position_std > 0"):
        init_local_attention(local, position_std=-1.0)


def test_fill_mask_returns_ranked_guesses(tmp_path):
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "great", "bad", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    model = BertForPreTraining(small_config(vocab_size=len(words)))
    guesses = fill_mask(model, tokenizer, "the movie was [MASK] . [MASK]", top_k=3)
    assert len(guesses) == 2 and all(len(g) == 3 for g in guesses)
    probabilities = [p for _, p in guesses[0]]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 < p < 1 for p in probabilities)
    assert all(token in words for token, _ in guesses[0])
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        fill_mask(model, tokenizer, "no mask here")


def test_quick_and_full_settings():
    quick, full = pretraining_settings(quick=True), pretraining_settings(quick=False)
    assert quick.model_config().hidden_size < full.model_config().hidden_size
    assert quick.training.max_steps < full.training.max_steps
    assert quick.max_seq_length <= quick.model_config().max_position_embeddings


# --------------------------------------------------------------------------- the whole run


@pytest.mark.slow
def test_pretrain_runs_end_to_end_on_imdb_text(tmp_path, imdb_archive):
    """A miniature run of the real pipeline: IMDb train text -> pairs -> train -> save -> load."""
    from dataclasses import replace

    from bertedu.pretraining import pretrain

    settings = pretraining_settings(quick=True)
    settings = replace(settings, n_reviews=60, n_validation=10, hidden_size=32, intermediate_size=64,
                       training=replace(settings.training, max_steps=4, batch_size=8, eval_every=2,
                                        checkpoint_every=2, progress=False))
    run = pretrain(settings, output_dir=tmp_path / "model", checkpoint_dir=tmp_path / "run")
    assert [row["step"] for row in run.history.evals] == [0, 2, 4]
    # the MLM bias starts at the corpus's log frequencies: below ln V before any step
    assert run.history.evals[0]["mlm_loss"] < torch.log(torch.tensor(8000.0)).item() - 1.0
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    assert (tmp_path / "run" / "last.pt").is_file()
    encoder = BertModel.from_pretrained(tmp_path / "model")
    assert encoder.config.hidden_size == 32 and encoder.config.vocab_size == 8000


@pytest.mark.slow
def test_pretrain_trains_with_the_math_kernel_only_under_cpu_bf16(imdb_archive, monkeypatch):
    """pretrain() runs the training loop inside settings.cpu_bf16_attention (the shipped preset's
    CPU path); the quick run (float32) keeps torch's fused kernel."""
    from dataclasses import replace

    import bertedu.pretraining as pretraining
    import bertedu.settings as settings_module
    from bertedu.training import TrainingHistory
    from test_cli_and_settings import sdpa_kernels_used

    monkeypatch.setattr(settings_module, "native_cpu_bf16", lambda: True)
    monkeypatch.setenv("BERTEDU_DEVICE", "cpu")
    kernels = []

    def fake_train(*args, **kwargs) -> TrainingHistory:  # records the kernel the loop would run under
        kernels.append(sdpa_kernels_used())
        return TrainingHistory()

    monkeypatch.setattr(pretraining, "train", fake_train)
    settings = pretraining_settings(quick=True)
    settings = replace(settings, n_reviews=60, n_validation=10, hidden_size=32, intermediate_size=64)
    for cpu_bf16 in (False, True):
        pretraining.pretrain(replace(settings, training=replace(settings.training, cpu_bf16=cpu_bf16)))
    assert any("flash" in name for name in kernels[0]), kernels
    assert not any("flash" in name for name in kernels[1]) and any("math" in name for name in kernels[1]), kernels
    assert sdpa_kernels_used() == kernels[0]  # and torch's choice is back afterwards


def test_pretrained_small_bert_trains_only_when_missing(tmp_path, monkeypatch, capsys):
    import bertedu.pretraining as pretraining

    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path))
    calls = []  # (settings, progress) of each pre-training run

    def fake_pretrain(settings, *, output_dir, **kwargs):
        calls.append((settings, kwargs.get("progress", True)))
        output_dir.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "vocab.txt"):
            (output_dir / name).write_text("{}")

    monkeypatch.setattr(pretraining, "pretrain", fake_pretrain)
    folder = pretraining.pretrained_small_bert(progress=False)  # `bertedu finetune --no-progress`: no bar either
    assert folder == tmp_path / "checkpoints" / "ch4-pretrained"
    [(settings, progress)] = calls
    assert settings.training.max_steps == pretraining_settings(quick=True).training.max_steps
    assert progress is False
    assert "pre-training a small BERT now" in capsys.readouterr().out
    assert pretraining.pretrained_small_bert() == folder and len(calls) == 1  # found: no second run


def test_cli_rejects_bad_arguments():
    import argparse

    from bertedu.commands import pretrain
    from bertedu.errors import UserError

    parser = argparse.ArgumentParser()
    pretrain.configure(parser)
    args = parser.parse_args(["--quick", "--max-steps", "0"])
    with pytest.raises(UserError, match="--max-steps must be at least 1"):
        pretrain.run(args)


@pytest.mark.parametrize("argv, message", [
    (["--quick", "--max-steps", "0"], "--max-steps must be at least 1; got 0."),
    (["--preset", "huge"], "Unknown pre-training preset 'huge'; choose one of quick, full, small-bert."),
])
def test_cli_bad_arguments_are_one_line_errors(argv, message):
    result = subprocess.run([sys.executable, "-m", "bertedu.cli", "pretrain", *argv],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"bertedu pretrain: error: {message}"]


def test_presets():
    from bertedu.pretraining import PRESETS, pretraining_preset

    assert set(PRESETS) == {"quick", "full", "small-bert"}
    shipped, quick = pretraining_preset("small-bert"), pretraining_preset("quick")
    assert shipped.dropout == 0.0 and shipped.n_reviews is None and shipped.max_seq_length == 128
    # the learner's architecture and recipe, only longer: chapter 5 shares their encoded reviews
    assert shipped.model_config().to_dict() == quick.model_config().to_dict()
    assert (shipped.training.learning_rate, shipped.training.warmup_ratio, shipped.training.batch_size) == \
        (quick.training.learning_rate, quick.training.warmup_ratio, quick.training.batch_size)
    assert shipped.training.max_minutes and quick.training.max_minutes is None
    assert quick.mlm_bias_prior and shipped.mlm_bias_prior  # the same start as the learner's run
    # ...except attention: the shipped weights predate init_local_attention, and the preset reproduces them
    assert quick.local_attention and not shipped.local_attention
    with pytest.raises(UserError, match="Unknown pre-training preset"):
        pretraining_preset("tiny")


def test_encode_pairs_matches_one_pair_at_a_time():
    from bertedu.pretraining_data import encode_pairs

    rng = random.Random(0)
    pairs = [SegmentPair([rng.randrange(5, 60) for _ in range(rng.randint(1, 12))],
                         [rng.randrange(5, 60) for _ in range(rng.randint(1, 12))], rng.random() < 0.5)
             for _ in range(30)]
    table = encode_pairs(pairs, VOCAB, max_seq_length=32)
    for i, pair in enumerate(pairs):
        ids = [VOCAB.cls_id, *pair.tokens_a, VOCAB.sep_id, *pair.tokens_b, VOCAB.sep_id]
        n_a = len(pair.tokens_a) + 2
        assert table["input_ids"][i].tolist() == ids + [0] * (32 - len(ids))
        assert table["token_type_ids"][i].tolist() == [0] * n_a + [1] * (len(ids) - n_a) + [0] * (32 - len(ids))
        assert table["attention_mask"][i].tolist() == [1] * len(ids) + [0] * (32 - len(ids))
        assert int(table["next_sentence_label"][i]) == int(pair.is_random_next)


def test_epoch_masks_are_a_function_of_seed_and_epoch_and_mlm_only_drops_nsp():
    data, again = tiny_data(), tiny_data()
    again.set_epoch(3)
    again.set_epoch(0)
    assert torch.equal(data.batch(slice(0, 10))["labels"], again.batch(slice(0, 10))["labels"])
    selected = (data.labels != -100).float().sum() / (data.tensors["attention_mask"].sum() - 3 * len(data))
    assert 0.12 < float(selected) < 0.18  # 15% of the non-special tokens
    data.nsp = False
    assert "next_sentence_label" not in data[0]
    batch = data.collate([data[i] for i in range(4)])
    assert batch["input_ids"].shape == (4, 32) and batch["labels"].shape == (4, 32)


def test_pretraining_corpus_never_holds_chapter5_or_test_reviews(imdb_archive):
    from bertedu.data import load_imdb, train_validation_split
    from bertedu.pretraining import pretraining_corpus

    train, held_out = pretraining_corpus(None, 500, seed=0)
    chapter5_train, chapter5_validation = train_validation_split(load_imdb("train", n=2200, seed=0), 200, seed=0)

    def keys(reviews):
        return {(r.label, r.review_id) for r in reviews}

    assert len(train) == 25_000 - 2_200 - 500 and len(held_out) == 500
    assert train.split == held_out.split == "train"  # IMDb test is never read
    assert not (keys(train) | keys(held_out)) & (keys(chapter5_train) | keys(chapter5_validation))
    assert not keys(train) & keys(held_out)
    assert len(keys(train) | keys(held_out) | keys(chapter5_train) | keys(chapter5_validation)) == 25_000
    first_100, _ = pretraining_corpus(100, 500, seed=0)
    assert [r.review_id for r in first_100] == [r.review_id for r in train[:100]]


def test_pre_ln_exercise_names_the_post_ln_mistake():
    from bertedu.exercises import ExerciseError, ch04

    with pytest.raises(ExerciseError, match="post-LN layer"):
        ch04.check_pre_ln_layer(lambda layer, x: layer(x, None)[0])
