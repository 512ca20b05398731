"""The exercise checkers of every chapter: the reference passes, typical mistakes fail with a helpful message."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from bertedu.exercises import ch00, ch01, ch02, ch03, ch04, ch05, ch05a, ch05b, ch06, ch07


def not_done(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check, reference", [
    (ch00.check_tokens_cut, ch00.tokens_cut),
    (ch00.check_median_by_rating, ch00.median_by_rating),
    (ch01.check_wordpiece, ch01.wordpiece),
    (ch01.check_unk_rate, ch01.unk_rate),
    (ch01.check_pair_inputs, ch01.pair_inputs),
    (ch01.check_pad_batch, ch01.pad_batch),
    (ch02.check_attention, ch02.attention),
    (ch02.check_split_heads, ch02.split_heads),
    (ch03.check_embed, ch03.embed),
    (ch03.check_encoder_layer, ch03.encoder_layer),
    (ch03.check_pre_ln_layer, ch03.pre_ln_layer),
    (ch03.check_count_parameters, ch03.count_parameters),
    (ch04.check_mlm_loss, ch04.mlm_loss),
    (ch04.check_lr_schedule, ch04.lr_schedule),
    (ch04.check_word_starts, ch04.word_starts),
    (ch04.check_pre_ln_layer, ch04.pre_ln_layer),
    (ch05.check_truncate_head_tail, ch05.truncate_head_tail),
    (ch05.check_macro_f1, ch05.macro_f1),
    (ch05.check_mean_pool, ch05.mean_pool),
    (ch05a.check_mean_pairwise_cosine, ch05a.mean_pairwise_cosine),
    (ch02.check_causal_attention, ch02.causal_attention),
    (ch05b.check_lora_parameter_count, ch05b.lora_parameter_count),
    (ch05b.check_lora_on_feed_forward, ch05b.lora_on_feed_forward),
    (ch05b.check_ia3_wrap, ch05b.ia3_wrap),
    (ch06.check_attention_entropy, ch06.attention_entropy),
    (ch06.check_cls_share, ch06.cls_share),
    (ch07.check_swap_words, ch07.swap_words),
    (ch07.check_sign_flip_p_value, ch07.sign_flip_p_value),
    (ch07.check_bootstrap_interval, ch07.bootstrap_interval),
])
def test_reference_passes_and_stub_is_reported(check, reference, capsys):
    check(reference)
    assert "✓" in capsys.readouterr().out
    check(not_done)  # a stub is not a failure: the notebook keeps running
    assert "not implemented yet" in capsys.readouterr().out


def test_solutions_print_and_unknown_names_fail(capsys, monkeypatch):
    ch02.solution("attention")
    assert "def attention(" in capsys.readouterr().out
    with pytest.raises(ValueError, match="there are: embed, encoder_layer, pre_ln_layer, count_parameters"):
        ch03.solution("nope")
    monkeypatch.setenv("BERTEDU_HIDE_SOLUTIONS", "1")
    ch02.solution("attention")
    out = capsys.readouterr().out
    assert "withheld" in out and "def attention(" not in out


def shortest_first(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def test_wordpiece_mistakes():
    with pytest.raises(AssertionError, match=r"(?s)wordpiece\('unaffable'\) returned \['\[UNK\]'\].*try the longest"):
        ch01.check_wordpiece(shortest_first)
    no_prefix = lambda word, vocab: [p.removeprefix("##") for p in ch01.wordpiece(word, vocab)]
    with pytest.raises(AssertionError, match="'##' prefix"):
        ch01.check_wordpiece(no_prefix)


def test_pair_and_padding_mistakes():
    all_zero_types = lambda a, b, cls, sep: (ch01.pair_inputs(a, b, cls, sep)[0], [0] * (len(a) + len(b) + 3))
    with pytest.raises(AssertionError, match="token_type_ids for A=.*B and the last \\[SEP\\] are segment 1"):
        ch01.check_pair_inputs(all_zero_types)
    inverted = lambda seqs, pad: (ch01.pad_batch(seqs, pad)[0], 1 - ch01.pad_batch(seqs, pad)[1])
    with pytest.raises(AssertionError, match=r"attention_mask for .*largest difference is 1 at index \(0, 0\)"):
        ch01.check_pad_batch(inverted)


def test_attention_mistakes():
    def unscaled(q, k, v, mask=None):
        probs = (q @ k.transpose(-2, -1)).softmax(-1)
        return probs @ v, probs

    with pytest.raises(AssertionError, match="divide the scores by sqrt"):
        ch02.check_attention(unscaled)

    def ignores_mask(q, k, v, mask=None):
        return ch02.attention(q, k, v, None)

    with pytest.raises(AssertionError, match=r"(?s)probs with padding.*padded keys \(mask 0\) must get probability 0"):
        ch02.check_attention(ignores_mask)

    def softmax_over_queries(q, k, v, mask=None):
        probs = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-2)
        return probs @ v, probs

    with pytest.raises(AssertionError, match="each row of probs should sum to 1"):
        ch02.check_attention(softmax_over_queries)


def test_split_heads_mistakes():
    with pytest.raises(AssertionError, match=r"view as \(B, T, nh, hs\) and then swap"):
        ch02.check_split_heads(lambda x, nh: x.view(x.shape[0], nh, x.shape[1], -1))
    with pytest.raises(AssertionError, match=r"shape \(2, 3, 2, 4\), expected \(2, 2, 3, 4\)"):
        ch02.check_split_heads(lambda x, nh: x.view(x.shape[0], x.shape[1], nh, -1))
    with pytest.raises(AssertionError, match="raised RuntimeError"):
        ch02.check_split_heads(lambda x, nh: x.view(7, -1))


def test_encoder_mistakes():
    def without_positions(ids, types, emb):
        return emb.LayerNorm(emb.word_embeddings(ids) + emb.token_type_embeddings(types))

    with pytest.raises(AssertionError, match="left out the position embeddings"):
        ch03.check_embed(without_positions)

    def pre_ln(x, mask, layer):
        a = layer.attention
        context, _ = a.self(a.output.LayerNorm(x), mask)
        h = x + a.output.dense(context)
        return h + layer.output.dense(torch.nn.functional.gelu(layer.intermediate.dense(layer.output.LayerNorm(h))))

    with pytest.raises(AssertionError, match="that is pre-LN"):
        ch03.check_encoder_layer(pre_ln)

    def no_pooler(config):
        H = config.hidden_size
        return ch03.count_parameters(config) - (H * H + H)

    with pytest.raises(AssertionError, match=r"(?s)count_parameters\(tiny\).*off by \+272.*exactly the pooler"):
        ch03.check_count_parameters(no_pooler)


def test_ch05_solutions_print():
    for name in ch05.SOLUTIONS:
        ch05.solution(name)  # prints; an unknown name would raise
    with pytest.raises(ValueError, match="there are: truncate_head_tail, macro_f1, mean_pool"):
        ch05.solution("nope")


def test_mlm_loss_mistakes():
    def everywhere(logits, labels):
        return F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten())

    with pytest.raises(AssertionError, match="averages over every position"):
        ch04.check_mlm_loss(everywhere)


def test_truncation_mistakes():
    with pytest.raises(AssertionError, match="that is head-only truncation"):
        ch05.check_truncate_head_tail(lambda pieces, body, head: pieces[:body])
    with pytest.raises(AssertionError, match=r"pieces\[-0:\] is the whole list"):
        ch05.check_truncate_head_tail(lambda p, body, head: p if len(p) <= body else p[:head] + p[-(body - head):])
    with pytest.raises(AssertionError, match="raised TypeError"):
        ch05.check_truncate_head_tail(lambda pieces, body, head: pieces[:"x"])


def test_macro_f1_mistakes():
    accuracy = lambda labels, predictions: sum(a == b for a, b in zip(labels, predictions)) / len(labels)
    with pytest.raises(AssertionError, match="that is the accuracy"):
        ch05.check_macro_f1(accuracy)
    f1_of_positive = lambda labels, predictions: ch05._f1_of(list(labels), list(predictions), 1)
    with pytest.raises(AssertionError, match="F1 of class 1 only"):
        ch05.check_macro_f1(f1_of_positive)


def test_mean_pool_mistakes():
    with pytest.raises(AssertionError, match="averaged over padding positions too"):
        ch05.check_mean_pool(lambda hidden, mask: hidden.mean(dim=1))
    with pytest.raises(AssertionError, match=r"that is the \[CLS\] vector"):
        ch05.check_mean_pool(lambda hidden, mask: hidden[:, 0])
    with pytest.raises(AssertionError, match=r"shape \(3, 6, 8\), expected \(3, 8\)"):
        ch05.check_mean_pool(lambda hidden, mask: hidden * mask.unsqueeze(-1))


# -- predict-then-run checkers: a close guess passes, a far one fails with the measured value ----


class WordTokenizer:
    """Splits on whitespace and cuts every '!' off: 'great!' -> ['great', '!']."""

    def tokenize(self, text):
        return [piece for word in text.split() for piece in word.replace("!", " !").split()]


def test_prediction_checkers(capsys):
    texts = ["great film!", "bad!"]  # 5 tokens, 3 words
    ch00.check_tokens_per_word(lambda: 1.7, texts, WordTokenizer())
    out = capsys.readouterr().out
    assert "you predicted 1.7, the run gives 1.67" in out and "✓ tokens_per_word" in out
    with pytest.raises(AssertionError, match=r"(?s)Off by -0\.667.*punctuation"):
        ch00.check_tokens_per_word(lambda: 1.0, texts, WordTokenizer())
    with pytest.raises(AssertionError, match="Return your prediction as a number"):
        ch03.check_embedding_share(lambda: "about half")
    ch03.check_embedding_share(lambda: 20)
    assert "the run gives 21.8%" in capsys.readouterr().out
    ch01.check_split_share(not_done, ["a"], {"a"})
    assert "not implemented yet" in capsys.readouterr().out


def test_ch00_mistakes():
    share_of_reviews = lambda lengths, budget: sum(n > budget for n in lengths) / len(lengths)
    with pytest.raises(AssertionError, match="share of \*reviews\*"):
        ch00.check_tokens_cut(share_of_reviews)
    negative = lambda lengths, budget: sum(n - budget for n in lengths) / sum(lengths)
    with pytest.raises(AssertionError, match="loses nothing"):
        ch00.check_tokens_cut(negative)
    mean = lambda ratings, lengths: {r: sum(n for q, n in zip(ratings, lengths) if q == r)
                                     / ratings.count(r) for r in set(ratings)}
    with pytest.raises(AssertionError, match="that is the mean"):
        ch00.check_median_by_rating(mean)


def test_unk_rate_and_pre_ln_mistakes():
    per_piece = lambda words, vocab: (lambda p: p.count("[UNK]") / len(p))(
        [piece for w in words for piece in ch01.wordpiece(w, vocab)])
    with pytest.raises(AssertionError, match="share of \*pieces\*"):
        ch01.check_unk_rate(per_piece)
    not_in_vocab = lambda words, vocab: sum(w not in vocab for w in words) / len(words)
    with pytest.raises(AssertionError, match="can still split"):
        ch01.check_unk_rate(not_in_vocab)
    with pytest.raises(AssertionError, match="that is post-LN"):
        ch03.check_pre_ln_layer(ch03.encoder_layer)


# -- every reference solution against the package or the reference library -----------------


@pytest.fixture(scope="module")
def real_vocab():
    from bertedu.checkpoint import default_checkpoint
    from bertedu.tokenization import load_vocab

    return load_vocab(default_checkpoint() / "vocab.txt")


REAL_WORDS = ["unwatchable", "snoozefest", "movie", "the", "rewatchable", "🍿", "✓✓", "naive", "x" * 150]


def test_wordpiece_and_unk_rate_references_agree_with_the_package_and_transformers(real_vocab):
    from bertedu.checkpoint import default_checkpoint
    from bertedu.tokenization import load_fast_tokenizer, wordpiece

    fast = load_fast_tokenizer(default_checkpoint())
    for word in REAL_WORDS[:-1]:  # the package also caps words at 100 characters
        assert ch01.wordpiece(word, real_vocab) == wordpiece(word, real_vocab)
    for word in ["unwatchable", "snoozefest", "movie", "🍿"]:
        assert ch01.wordpiece(word, real_vocab) == fast.tokenize(word)
    expected = sum(fast.tokenize(w) == ["[UNK]"] for w in REAL_WORDS) / len(REAL_WORDS)
    assert expected > 0 and ch01.unk_rate(REAL_WORDS, real_vocab) == expected
    split = 100 * sum(len(fast.tokenize(w)) > 1 for w in ["movie", "the", "unwatchable", "snoozefest"]) / 4
    assert ch01.split_share(["movie", "the", "unwatchable", "snoozefest"], real_vocab) == split == 50


def test_pair_and_padding_references_agree_with_the_package():
    from bertedu.checkpoint import default_checkpoint
    from bertedu.tokenization import BertTokenizer, pad_batch

    tokenizer = BertTokenizer.from_pretrained(default_checkpoint())
    a, b = "The acting was wooden.", "I walked out."
    encoded = tokenizer.encode(a, b)
    ids_a, ids_b = (tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in (a, b))
    assert ch01.pair_inputs(ids_a, ids_b, tokenizer.cls_token_id, tokenizer.sep_token_id) == (
        encoded["input_ids"], encoded["token_type_ids"])
    for sequences in ch01.BATCHES:
        package = pad_batch([{"input_ids": s, "token_type_ids": [0] * len(s)} for s in sequences], pad_id=0)
        ids, mask = ch01.pad_batch(sequences, 0)
        assert torch.equal(ids, package["input_ids"]) and torch.equal(mask, package["attention_mask"])


def test_attention_references_agree_with_the_package():
    from bertedu.attention import MultiHeadSelfAttention, padding_bias, scaled_dot_product_attention

    for q, k, v, mask in ch02._cases():
        context, probs = ch02.attention(q, k, v, mask)
        package_context, package_probs = scaled_dot_product_attention(q, k, v, padding_bias(mask, q.dtype))
        torch.testing.assert_close(probs, package_probs)
        torch.testing.assert_close(context, package_context)
    x = torch.randn(2, 3, 8)
    assert torch.equal(ch02.split_heads(x, 4), MultiHeadSelfAttention(8, 4).split_heads(x))


def test_encoder_references_agree_with_the_package_and_torch():
    from bertedu.model import BertModel

    embeddings, layer = ch03._tiny_modules()
    ids, types = torch.tensor([[2, 7, 9, 3]]), torch.tensor([[0, 0, 1, 1]])
    with torch.no_grad():
        torch.testing.assert_close(ch03.embed(ids, types, embeddings), embeddings(ids, types))
        x, mask = torch.randn(2, 6, 16), torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
        torch.testing.assert_close(ch03.encoder_layer(x, mask, layer), layer(x, mask)[0])
        # torch's own pre-LN layer with BertLayer's weights is the reference for pre_ln_layer
        torch_layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="gelu", batch_first=True,
                                                       norm_first=True, layer_norm_eps=ch03.TINY.layer_norm_eps).eval()
        s, a = layer.attention.self, layer.attention
        torch_layer.self_attn.in_proj_weight.copy_(torch.cat([s.query.weight, s.key.weight, s.value.weight]))
        torch_layer.self_attn.in_proj_bias.copy_(torch.cat([s.query.bias, s.key.bias, s.value.bias]))
        for theirs, ours in [(torch_layer.self_attn.out_proj, a.output.dense), (torch_layer.norm1, a.output.LayerNorm),
                             (torch_layer.linear1, layer.intermediate.dense), (torch_layer.linear2, layer.output.dense),
                             (torch_layer.norm2, layer.output.LayerNorm)]:
            theirs.load_state_dict(ours.state_dict())
        expected = torch_layer(x, src_key_padding_mask=mask == 0)
        real = mask.bool()
        torch.testing.assert_close(ch03.pre_ln_layer(x, mask, layer)[real], expected[real], atol=1e-5, rtol=1e-5)
    for config in ch03.COUNT_CONFIGS.values():
        if config.hidden_size <= 384:
            assert ch03.count_parameters(config) == sum(p.numel() for p in BertModel(config).parameters())
    share = ch03.embedding_share(30522)
    assert abs(share - 51.6) < 0.05  # notebook 03 prints 51.6% for the real checkpoint


def test_pretraining_references_agree_with_the_package_and_torch():
    from bertedu.pretraining_data import mask_tokens
    from bertedu.training import lr_multiplier

    logits, labels = torch.randn(2, 6, 11), torch.full((2, 6), -100)
    labels[0, 1], labels[1, 4] = 3, 7
    torch.testing.assert_close(ch04.mlm_loss(logits, labels),
                               F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100))
    for step in range(20):
        assert ch04.lr_schedule(step, 4, 20, 1e-3) == pytest.approx(1e-3 * lr_multiplier(step, 4, 20))
    # whole-word masking in the package selects exactly the words that word_starts groups
    continuation = torch.rand(4, 40, generator=torch.Generator().manual_seed(0)) < 0.4
    continuation[:, 0] = False
    ids = torch.randint(5, 50, (4, 40), generator=torch.Generator().manual_seed(1))
    _, mlm_labels = mask_tokens(ids, vocab_size=50, mask_token_id=4, special_token_ids=[0, 1, 2, 3],
                                mlm_probability=0.3, generator=torch.Generator().manual_seed(2),
                                continuation_mask=continuation)
    selected = mlm_labels != -100
    starts = ch04.word_starts(continuation)
    assert selected.any() and torch.equal(selected, selected.gather(-1, starts))


def test_finetuning_references_agree_with_the_package_and_sklearn():
    from sklearn.metrics import f1_score

    from bertedu.finetuning import Example, frozen_features, truncate_head_tail
    from bertedu.metrics import classification_scores
    from bertedu.model import BertModel

    for n, body, head in ch05.TRUNCATION_CASES:
        pieces = list(range(n))
        assert ch05.truncate_head_tail(pieces, body, head) == truncate_head_tail(pieces, body, head)
    for labels, predictions in ch05._macro_f1_cases().values():
        expected = f1_score(labels, predictions, average="macro", zero_division=0)
        assert ch05.macro_f1(labels, predictions) == pytest.approx(expected)
        assert classification_scores(labels, predictions).macro_f1 == pytest.approx(expected)
    torch.manual_seed(0)
    encoder = BertModel(ch03.TINY).eval()
    examples = [Example([2, 7, 9, 3]), Example([2, 11, 3])]
    features = frozen_features(encoder, examples)["mean"]
    with torch.no_grad():
        ids = torch.tensor([[2, 7, 9, 3], [2, 11, 3, 0]])
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        ours = ch05.mean_pool(encoder(ids, mask).last_hidden_state, mask)
    torch.testing.assert_close(ours, torch.from_numpy(features), atol=1e-5, rtol=1e-5)


# -- chapter 5a ------------------------------------------------------------------------------


def test_ch05a_mean_pairwise_cosine_is_the_package_s_and_the_typical_mistakes_get_hints():
    from bertedu.finetuning import mean_pairwise_cosine

    for vectors in ch05a._cosine_cases().values():
        assert ch05a.mean_pairwise_cosine(vectors) == pytest.approx(mean_pairwise_cosine(vectors.numpy()), abs=1e-12)
        assert ch05a.mean_pairwise_cosine(vectors) == pytest.approx(ch05a._brute_force(vectors), abs=1e-12)
    with_self_pairs = lambda v: float((v / v.norm(dim=1, keepdim=True)).mean(dim=0).pow(2).sum())
    with pytest.raises(AssertionError, match=r"(?s)Hint: that is \|m\|\^2.*leave them out"):
        ch05a.check_mean_pairwise_cosine(with_self_pairs)
    not_normalised = lambda v: float((len(v) * v.mean(dim=0).pow(2).sum() - 1) / (len(v) - 1))
    with pytest.raises(AssertionError, match="Hint: the formula needs unit vectors"):
        ch05a.check_mean_pairwise_cosine(not_normalised)
    with pytest.raises(AssertionError, match="return one number"):
        ch05a.check_mean_pairwise_cosine(lambda v: v @ v.T)


def test_ch05a_gradient_growth_is_one_over_the_rescaling_factor(capsys):
    """The predict-then-run exercise measures what the chapter claims: rescaling the tables by c
    multiplies the word table's gradient by 1 / c, the loss staying the same."""
    from bertedu.classification import BertForSequenceClassification
    from bertedu.finetuning import rescale_embeddings

    torch.manual_seed(0)
    model = BertForSequenceClassification(ch03.TINY, num_labels=2)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.mul_(2.5)  # as after pre-training: larger than 0.02
    batch = {"input_ids": torch.tensor([[2, 7, 9, 3], [2, 11, 3, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]), "labels": torch.tensor([1, 0])}
    factor = rescale_embeddings(copy.deepcopy(model))  # the factor only; model keeps its scale
    growth = ch05a.word_gradient_growth(model, batch)
    assert growth == pytest.approx(1 / factor, rel=1e-4) and growth > 2
    ch05a.check_gradient_growth(lambda: round(1 / factor, 2), model, batch)
    assert "✓ gradient_growth" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"(?s)Off by.*1 / factor"):
        ch05a.check_gradient_growth(lambda: factor, model, batch)  # the typical guess: the factor itself

