"""The chapter 4-5 checkers: the reference passes, typical mistakes fail with a helpful message."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bertedu.exercises import ch04, ch05


def not_done(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check, reference", [
    (ch04.check_mlm_loss, ch04.mlm_loss),
    (ch04.check_lr_schedule, ch04.lr_schedule),
    (ch04.check_word_starts, ch04.word_starts),
    (ch05.check_truncate_head_tail, ch05.truncate_head_tail),
    (ch05.check_macro_f1, ch05.macro_f1),
    (ch05.check_mean_pool, ch05.mean_pool),
])
def test_reference_passes_and_stub_is_reported(check, reference, capsys):
    check(reference)
    assert "✓" in capsys.readouterr().out
    check(not_done)  # a stub is not a failure: the notebook keeps running
    assert "not implemented yet" in capsys.readouterr().out


def test_ch05_solutions_print():
    for name in ch05.SOLUTIONS:
        ch05.solution(name)  # prints; an unknown name would raise
    with pytest.raises(ValueError, match="there are: truncate_head_tail, macro_f1, mean_pool"):
        ch05.solution("nope")


def test_ch05_reference_truncation_agrees_with_the_package():
    from bertedu.finetuning import truncate_head_tail

    for n, body, head in [(20, 8, 3), (20, 8, 0), (20, 8, 8), (5, 8, 3)]:
        pieces = list(range(n))
        assert ch05.truncate_head_tail(pieces, body, head) == truncate_head_tail(pieces, body, head)


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
