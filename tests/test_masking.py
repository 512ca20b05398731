"""bertedu.pretraining.mask_tokens: BERT's 15% / 80-10-10 corruption, checked statistically."""
import pytest
import torch

from bertedu.pretraining import mask_tokens

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 1000


def batch_with_specials(n: int = 64, length: int = 128, seed: int = 0) -> torch.Tensor:
    """(n, length) ids: [CLS] A [SEP] B [SEP] then padding, with lengths that vary by row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIAL), VOCAB, (n, length), generator=g)
    for row in range(n):
        used = int(torch.randint(10, length + 1, (), generator=g))
        ids[row, 0] = CLS
        ids[row, used // 2] = SEP
        ids[row, used - 1] = SEP
        ids[row, used:] = PAD
    return ids


def corrupt(ids, seed, **kwargs):
    return mask_tokens(ids, vocab_size=VOCAB, mask_token_id=MASK, special_token_ids=SPECIAL,
                       generator=torch.Generator().manual_seed(seed), **kwargs)


def test_proportions_over_many_draws():
    ids = batch_with_specials()
    counts = dict(eligible=0, selected=0, masked=0, random=0, kept=0)
    for seed in range(20):
        masked, labels = corrupt(ids, seed)
        selected = labels != -100
        counts["eligible"] += int((~torch.isin(ids, torch.tensor(SPECIAL))).sum())
        counts["selected"] += int(selected.sum())
        counts["masked"] += int((selected & (masked == MASK)).sum())
        counts["random"] += int((selected & (masked != MASK) & (masked != ids)).sum())
        counts["kept"] += int((selected & (masked == ids)).sum())
    # ~90,000 eligible tokens: the standard error of 15% is ~0.1%, of 80/10/10 ~0.4%/0.3%.
    assert counts["selected"] / counts["eligible"] == pytest.approx(0.15, abs=0.005)
    assert counts["masked"] / counts["selected"] == pytest.approx(0.80, abs=0.015)
    # A random replacement equals the original 1 time in ~1000: it then counts as kept.
    assert counts["random"] / counts["selected"] == pytest.approx(0.10, abs=0.012)
    assert counts["kept"] / counts["selected"] == pytest.approx(0.10, abs=0.012)
    assert counts["masked"] + counts["random"] + counts["kept"] == counts["selected"]


def test_mlm_probability_is_honoured():
    ids = batch_with_specials()
    eligible = ~torch.isin(ids, torch.tensor(SPECIAL))
    _, labels = corrupt(ids, 0, mlm_probability=0.4)
    assert (labels != -100).sum() / eligible.sum() == pytest.approx(0.4, abs=0.02)


def test_special_tokens_and_padding_are_never_touched():
    ids = batch_with_specials()
    special = torch.isin(ids, torch.tensor(SPECIAL))
    for seed in range(10):
        masked, labels = corrupt(ids, seed)
        assert torch.equal(masked[special], ids[special])
        assert bool((labels[special] == -100).all())
        assert bool((masked[ids == PAD] == PAD).all())


def test_labels_hold_the_original_ids_and_random_tokens_are_not_special():
    ids = batch_with_specials()
    masked, labels = corrupt(ids, 3)
    selected = labels != -100
    assert torch.equal(labels[selected], ids[selected])
    replaced = selected & (masked != MASK) & (masked != ids)
    assert bool(((masked[replaced] >= len(SPECIAL)) & (masked[replaced] < VOCAB)).all())
    # Replacements are spread over the vocabulary, not one token.
    assert masked[replaced].unique().numel() > 0.8 * int(replaced.sum())
    # Unselected tokens are untouched.
    assert torch.equal(masked[~selected], ids[~selected])


def test_input_is_not_modified_in_place():
    ids = batch_with_specials()
    before = ids.clone()
    masked, _ = corrupt(ids, 0)
    assert torch.equal(ids, before)
    assert masked.data_ptr() != ids.data_ptr()


def test_generator_makes_it_reproducible():
    ids = batch_with_specials()
    a, la = corrupt(ids, 7)
    b, lb = corrupt(ids, 7)
    c, _ = corrupt(ids, 8)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)


def test_whole_word_masking_selects_all_pieces_of_a_word():
    ids = batch_with_specials()
    g = torch.Generator().manual_seed(1)
    continuation = torch.rand(ids.shape, generator=g) < 0.4  # ~40% of tokens continue a word
    special = torch.isin(ids, torch.tensor(SPECIAL))
    continuation &= ~special
    continuation[:, 1:] &= ~special[:, :-1]  # a word never starts with a continuation piece
    masked, labels = corrupt(ids, 0, continuation_mask=continuation)
    selected = labels != -100
    # A continuation piece is selected exactly when the piece before it is.
    assert torch.equal(selected[:, 1:][continuation[:, 1:]], selected[:, :-1][continuation[:, 1:]])
    # Words, not pieces, are drawn with probability 15%.
    starts = ~continuation & ~special
    assert selected[starts].float().mean().item() == pytest.approx(0.15, abs=0.015)
    assert torch.equal(labels[selected], ids[selected])


def test_bad_inputs_get_clear_errors():
    ids = batch_with_specials(4, 16)
    with pytest.raises(ValueError, match="integer token ids"):
        mask_tokens(ids.float(), vocab_size=VOCAB, mask_token_id=MASK, special_token_ids=SPECIAL)
    with pytest.raises(ValueError, match="mlm_probability"):
        mask_tokens(ids, vocab_size=VOCAB, mask_token_id=MASK, special_token_ids=SPECIAL, mlm_probability=1.5)
    with pytest.raises(ValueError, match="continuation_mask"):
        mask_tokens(ids, vocab_size=VOCAB, mask_token_id=MASK, special_token_ids=SPECIAL,
                    continuation_mask=torch.zeros(4, 15, dtype=torch.bool))
