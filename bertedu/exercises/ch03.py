"""Chapter 3 exercises: the embeddings, encoder layers (post-LN and pre-LN), parameters.

    from bertedu.exercises import ch03
    ch03.check_embed(my_embed)                  # (input_ids, token_type_ids, embeddings) -> (B, T, H)
    ch03.check_encoder_layer(my_encoder_layer)  # (x, attention_mask, layer) -> (B, T, H), post-LN
    ch03.check_pre_ln_layer(my_pre_ln_layer)    # (x, attention_mask, layer) -> (B, T, H), pre-LN
    ch03.check_count_parameters(my_count)       # (config) -> int
    ch03.check_embedding_share(my_prediction)   # predict, then run
    ch03.solution("embed")
"""
from __future__ import annotations

from typing import Callable

import torch

from bertedu.exercises import (
    ExerciseError,
    call_learner,
    check_prediction,
    checker,
    compare_tensors,
    fail,
    print_solution,
)
from bertedu.model import BertConfig, BertEmbeddings, BertLayer, count_for_config

# -- reference solutions ------------------------------------------------------------------


def embed(input_ids: torch.Tensor, token_type_ids: torch.Tensor, embeddings: BertEmbeddings) -> torch.Tensor:
    """token + position + segment embeddings, then LayerNorm (eval mode: no dropout)."""
    positions = torch.arange(input_ids.size(1))
    x = (embeddings.word_embeddings(input_ids)
         + embeddings.position_embeddings(positions)
         + embeddings.token_type_embeddings(token_type_ids))
    return embeddings.LayerNorm(x)


def encoder_layer(x: torch.Tensor, attention_mask: torch.Tensor, layer: BertLayer) -> torch.Tensor:
    """Post-LN: x = LN(x + W^O attn(x)); x = LN(x + W_2 GELU(W_1 x))."""
    context, _ = layer.attention.self(x, attention_mask)  # multi-head attention, (B, T, H)
    x = layer.attention.output.LayerNorm(x + layer.attention.output.dense(context))
    hidden = torch.nn.functional.gelu(layer.intermediate.dense(x))  # (B, T, I)
    return layer.output.LayerNorm(x + layer.output.dense(hidden))


def pre_ln_layer(x: torch.Tensor, attention_mask: torch.Tensor, layer: BertLayer) -> torch.Tensor:
    """Pre-LN: x = x + W^O attn(LN_1(x)); x = x + W_2 GELU(W_1 LN_2(x)), with BertLayer's weights."""
    a = layer.attention
    context, _ = a.self(a.output.LayerNorm(x), attention_mask)  # normalise first, then attend
    x = x + a.output.dense(context)  # the residual stream itself is never normalised
    hidden = torch.nn.functional.gelu(layer.intermediate.dense(layer.output.LayerNorm(x)))  # (B, T, I)
    return x + layer.output.dense(hidden)


def count_parameters(config: BertConfig) -> int:
    """Parameters of a BertModel, from the config alone."""
    H, I, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * H + 2 * H
    attention = 4 * (H * H + H) + 2 * H  # Q, K, V, W^O with biases; one LayerNorm
    feed_forward = (H * I + I) + (I * H + H) + 2 * H  # W_1, W_2 with biases; one LayerNorm
    pooler = H * H + H
    return embeddings + L * (attention + feed_forward) + pooler


SOLUTIONS = {"embed": embed, "encoder_layer": encoder_layer, "pre_ln_layer": pre_ln_layer,
             "count_parameters": count_parameters}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------

TINY = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=32, max_position_embeddings=12)


def _tiny_modules() -> tuple[BertEmbeddings, BertLayer]:
    torch.manual_seed(0)
    embeddings, layer = BertEmbeddings(TINY).eval(), BertLayer(TINY).eval()
    for module in (embeddings, layer):  # random LayerNorm affine, so forgetting it shows
        for name, p in module.named_parameters():
            if "LayerNorm" in name:
                torch.nn.init.normal_(p, mean=1.0 if name.endswith("weight") else 0.0, std=0.3)
    return embeddings, layer


@checker("embed", n_cases=1)
def check_embed(function: Callable) -> None:
    """Compare ``function(input_ids, token_type_ids, embeddings)`` with BertEmbeddings (eval)."""
    embeddings, _ = _tiny_modules()
    input_ids = torch.tensor([[2, 7, 9, 3, 0], [2, 11, 3, 12, 3]])
    token_type_ids = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]])
    got = call_learner(function, "input_ids of shape (2, 5)", input_ids, token_type_ids, embeddings)
    with torch.no_grad():
        expected = embeddings(input_ids, token_type_ids)
        no_positions = embeddings.LayerNorm(embeddings.word_embeddings(input_ids)
                                            + embeddings.token_type_embeddings(token_type_ids))
        no_norm = (embeddings.word_embeddings(input_ids) + embeddings.token_type_embeddings(token_type_ids)
                   + embeddings.position_embeddings(torch.arange(5)))
    hints = [(no_positions, "you seem to have left out the position embeddings (positions 0..T-1)."),
             (no_norm, "you seem to have left out the LayerNorm after the sum.")]
    try:
        compare_tensors(got, expected, "embeddings of input_ids (2, 5)")
    except ExerciseError as error:
        hint = next((h for ref, h in hints if isinstance(got, torch.Tensor) and got.shape == ref.shape
                     and torch.allclose(got, ref, atol=1e-5)), "")
        raise ExerciseError(str(error) + (f"\n  Hint: {hint}" if hint else "")) from None


@checker("encoder_layer", n_cases=1)
def check_encoder_layer(function: Callable) -> None:
    """Compare ``function(x, attention_mask, layer)`` with ``BertLayer`` (eval mode)."""
    _, layer = _tiny_modules()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, TINY.hidden_size, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    got = call_learner(function, "x of shape (2, 6, 16) with padding", x, mask, layer)
    with torch.no_grad():
        expected, _ = layer(x, mask)
        a = layer.attention
        context, _ = a.self(a.output.LayerNorm(x), mask)
        h = x + a.output.dense(context)
        pre_ln = h + layer.output.dense(torch.nn.functional.gelu(layer.intermediate.dense(layer.output.LayerNorm(h))))
    try:
        compare_tensors(got, expected, "encoder layer output (2, 6, 16)")
    except ExerciseError as error:
        hint = ""
        if isinstance(got, torch.Tensor) and got.shape == pre_ln.shape and torch.allclose(got, pre_ln, atol=1e-5):
            hint = "\n  Hint: that is pre-LN (normalise, then the sublayer). BERT adds the residual first, then normalises: LN(x + sublayer(x))."
        raise ExerciseError(str(error) + hint) from None


COUNT_CONFIGS = {"tiny": TINY, "all-MiniLM-L6-v2": BertConfig(hidden_size=384, num_hidden_layers=6,
                                                               intermediate_size=1536), "BERT-base": BertConfig()}


@checker("count_parameters", n_cases=len(COUNT_CONFIGS))
def check_count_parameters(function: Callable) -> None:
    """Compare ``function(config)`` with the number of parameters of ``BertModel(config)``."""
    for name, config in COUNT_CONFIGS.items():
        got = call_learner(function, f"the {name} config", config)
        if isinstance(got, (torch.Tensor, float)) or hasattr(got, "item"):
            got = got.item() if hasattr(got, "item") else got
            got = int(got) if float(got).is_integer() else got
        counts = count_for_config(config)
        expected = counts["total"]
        if got == expected:
            continue
        H, L = config.hidden_size, config.num_hidden_layers
        known = {
            counts["pooler"]: "the pooler (one H x H layer with bias)",
            2 * H * (2 * L + 1): "the LayerNorms (2H parameters each: 2 per layer and 1 after the embeddings)",
            L * (4 * H + config.intermediate_size + H): "the biases of the linear layers",
            counts["position embeddings"] + counts["segment embeddings"]: "the position and segment embeddings",
        }
        missing = expected - got if isinstance(got, int) else None
        hint = f"\n  Hint: the difference is exactly {known[missing]}." if missing in known else ""
        fail(f"count_parameters({name}) = {got}, expected {expected:,} (off by {expected - got:+,})."
             f"\n  Per component: {({k: v for k, v in counts.items() if k != 'total'})}{hint}"
             if isinstance(got, int) else f"count_parameters({name}) returned {got!r}; return an int.")


@checker("pre_ln_layer", n_cases=1)
def check_pre_ln_layer(function: Callable) -> None:
    """Compare ``function(x, attention_mask, layer)`` with a pre-LN layer built from BertLayer's weights."""
    _, layer = _tiny_modules()
    g = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(2, 6, TINY.hidden_size, generator=g)  # a stream with a scale LayerNorm would change
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    got = call_learner(function, "x of shape (2, 6, 16) with padding", x, mask, layer)
    with torch.no_grad():
        expected = pre_ln_layer(x, mask, layer)
        post_ln, _ = layer(x, mask)
    try:
        compare_tensors(got, expected, "pre-LN layer output (2, 6, 16)")
    except ExerciseError as error:
        hint = ""
        if isinstance(got, torch.Tensor) and got.shape == post_ln.shape and torch.allclose(got, post_ln, atol=1e-5):
            hint = ("\n  Hint: that is post-LN, BERT's own layer. Pre-LN normalises the *input* of each "
                    "sublayer and adds the sublayer's output to the unnormalised stream: x + sublayer(LN(x)).")
        elif isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(
                got.std(-1), torch.ones(2, 6), atol=0.3):
            hint = "\n  Hint: your output looks normalised; in pre-LN nothing normalises the sum after a residual."
        raise ExerciseError(str(error) + hint) from None


def embedding_share(vocab_size: int = 8000) -> float:
    """Percent of all-MiniLM-L6-v2's parameters in the token embeddings, with another vocabulary size."""
    counts = count_for_config(BertConfig(vocab_size=vocab_size, hidden_size=384, num_hidden_layers=6,
                                         intermediate_size=1536))
    return 100 * counts["token embeddings"] / counts["total"]


@checker("embedding_share", n_cases=1)
def check_embedding_share(function: Callable[[], float]) -> None:
    """Predict, then run: the token embeddings' share with chapter 1's 8,000-token IMDb vocabulary."""
    check_prediction(function, embedding_share, what="token embeddings' share with an 8,000-token vocabulary",
                     tolerance=5, unit="%",
                     why="the table shrinks (8,000 x 384 instead of 30,522 x 384), but so does the total: "
                         "the share falls less than the table does.")
