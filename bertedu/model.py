"""The BERT encoder (chapter 3): embeddings, a stack of encoder layers, the pooler.

    input_ids (B, T) ──> BertEmbeddings ──> BertLayer x L ──> last_hidden_state (B, T, H)
                                                               └─> BertPooler ──> pooler_output (B, H)

Each ``BertLayer`` is self-attention followed by a feed-forward block, each wrapped in a
residual connection and a LayerNorm *after* the addition (post-LN, as in the original
BERT and Transformer).

Module and parameter names mirror Hugging Face's ``BertModel`` state dict
(``embeddings.word_embeddings.weight``, ``encoder.layer.0.attention.self.query.weight``,
...), so a checkpoint saved by ``bertedu`` loads in ``transformers`` and vice versa.

Shapes: ``B`` batch, ``T`` sequence length, ``H`` hidden size, ``I`` intermediate
(feed-forward) size, ``L`` layers, ``nh`` heads.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertedu.attention import MultiHeadSelfAttention
from bertedu.checkpoint import (
    CONFIG_NAME,
    SAFETENSORS_NAME,
    checkpoint_folder,
    read_config_dict,
    read_json_object,
    read_state_dict,
    save_state_dict,
)
from bertedu.errors import UserError, UserFileNotFoundError
from bertedu.files import write_json
from bertedu.settings import value_checks_enabled

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------


def gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


# hidden_act values found in BERT config.json files. "gelu" is the exact erf form.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": F.relu,
}


@dataclass
class BertConfig:
    """The sizes of a BERT model. Field names are those of Hugging Face's config.json.

    The defaults are BERT-base (110M parameters). The course's checkpoint,
    all-MiniLM-L6-v2, has ``hidden_size=384, num_hidden_layers=6,
    intermediate_size=1536``.
    """

    vocab_size: int = 30522
    hidden_size: int = 768  # H
    num_hidden_layers: int = 12  # L
    num_attention_heads: int = 12  # nh
    intermediate_size: int = 3072  # I, usually 4 * H
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512  # the longest sequence the model accepts
    type_vocab_size: int = 2  # segments A and B
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    # bertedu's option, not in transformers: LayerNorm *before* each sublayer (pre-LN) and one
    # final LayerNorm after the last layer. Off: the original BERT (post-LN).
    pre_layer_norm: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            problem = _field_problem(field.name, str(field.type), getattr(self, field.name))
            if problem:
                raise UserError(problem)
        if self.hidden_size % self.num_attention_heads != 0:
            raise UserError(
                f"hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_attention_heads ({self.num_attention_heads})."
            )
        if self.pad_token_id >= self.vocab_size:
            raise UserError(f"pad_token_id ({self.pad_token_id}) must be a token id below "
                            f"vocab_size ({self.vocab_size}).")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: object = None) -> BertConfig:
        """Build from a config.json dict; keys that are not fields (``use_cache``, ...) are ignored.

        Wrong types or values raise a ``UserError`` naming the field and ``source`` (the file).
        """
        where = f"{source}: " if source is not None else ""
        if not isinstance(data, dict):
            raise UserError(f"{where}a config must be a JSON object ({{...}}); got a {type(data).__name__}.")
        position_type = data.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise UserError(
                f"{where}position_embedding_type={position_type!r}: bertedu implements BERT's learned "
                f"absolute positions only."
            )
        names = {field.name for field in dataclasses.fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in names})
        except UserError as error:
            raise UserError(f"{where}{error}") from None

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BertConfig:
        """A config.json file (or any JSON file with its keys)."""
        return cls.from_dict(read_json_object(Path(path)), source=path)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> BertConfig:
        """The config.json of a checkpoint folder."""
        folder = Path(path).expanduser()
        if not (folder / CONFIG_NAME).is_file():
            raise UserFileNotFoundError(f"No {CONFIG_NAME} in {folder}.")
        return cls.from_dict(read_config_dict(folder), source=folder / CONFIG_NAME)

    def to_dict(self) -> dict[str, Any]:
        """The config.json content; ``model_type`` lets ``transformers`` load it too."""
        data = dataclasses.asdict(self)
        if not self.pre_layer_norm:
            del data["pre_layer_norm"]  # a post-LN config.json stays exactly transformers' BERT
        return {**data, "model_type": "bert", "architectures": ["BertModel"]}

    def save_pretrained(self, path: str | os.PathLike) -> None:
        write_json(Path(path) / CONFIG_NAME, self.to_dict())


# What each field may hold, beyond its type: (lowest, highest, is the highest allowed?).
SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size")
PROBABILITY_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")


def _field_problem(name: str, type_name: str, value: Any) -> str | None:
    """Why ``value`` does not fit the config field ``name`` (declared as ``type_name``), or None.

    JSON has no int/float distinction a user can see, so the message says "a whole number"
    for ints; bools are refused where numbers are expected (``True`` is an int in Python).
    """
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} must be a whole number; got {_show(value)}."
        if name in SIZE_FIELDS and value < 1:
            return f"{name} must be at least 1; got {value}."
        if value < 0:
            return f"{name} must not be negative; got {value}."
    elif type_name == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return f"{name} must be a number; got {_show(value)}."
        if name in PROBABILITY_FIELDS and not 0 <= value < 1:
            return f"{name} is a dropout probability and must lie in [0, 1); got {value}."
        if name == "layer_norm_eps" and not value > 0:
            return f"layer_norm_eps must be positive; got {value}."
        if value < 0:
            return f"{name} must not be negative; got {value}."
    elif type_name == "bool":
        if not isinstance(value, bool):
            return f"{name} must be true or false; got {_show(value)}."
    elif type_name == "str":
        if not isinstance(value, str):
            return f"{name} must be a string; got {_show(value)}."
        if name == "hidden_act" and value not in ACTIVATIONS:
            return f"hidden_act={value!r} is not supported; use one of {sorted(ACTIVATIONS)}."
    return None


def _show(value: Any) -> str:
    """A value as the user wrote it in config.json (``null``, ``"384"``, ``6.5``)."""
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return f"{shown} ({'null' if value is None else type(value).__name__})"


# ---------------------------------------------------------------------------------------
# The building blocks
# ---------------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    """token + position + segment embeddings, then LayerNorm and dropout.

    Attention itself ignores order, so each position ``0..T-1`` gets a learned vector;
    the segment (token type) vector tells sentence A from sentence B in a pair.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        H = config.hidden_size
        # padding_idx: the [PAD] vector gets no gradient (padding carries no meaning).
        self.word_embeddings = nn.Embedding(config.vocab_size, H, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, H)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, H)
        self.LayerNorm = nn.LayerNorm(H, eps=config.layer_norm_eps)  # HF's name, kept for loading
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        """``(B, T)`` ids and segment ids -> ``(B, T, H)``."""
        positions = torch.arange(input_ids.size(1), device=input_ids.device)  # (T,)
        x = (
            self.word_embeddings(input_ids)  # (B, T, H)
            + self.token_type_embeddings(token_type_ids)  # (B, T, H)
            + self.position_embeddings(positions)  # (T, H), broadcast over the batch
        )
        return self.dropout(self.LayerNorm(x))


class AddNorm(nn.Module):
    """Project, dropout, add the residual, LayerNorm: ``LN(x + dropout(dense(h)))``.

    This closes both sublayers of a BERT layer: after attention, ``dense`` is the output
    projection W^O (H -> H); after the feed-forward block it maps I -> H. The residual
    lets each layer learn a *change* to its input; the LayerNorm after the addition
    (post-LN) keeps the scale of the stream steady from layer to layer.
    """

    def __init__(self, in_features: int, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.pre_layer_norm = config.pre_layer_norm

    def forward(self, hidden_states: Tensor, residual: Tensor) -> Tensor:
        """``(B, T, in_features)``, ``(B, T, H)`` -> ``(B, T, H)``.

        With ``config.pre_layer_norm`` the LayerNorm has already been applied to the
        sublayer's *input* (see ``pre_norm``), and the sum stays un-normalised.
        """
        if self.pre_layer_norm:
            return residual + self.dropout(self.dense(hidden_states))
        return self.LayerNorm(residual + self.dropout(self.dense(hidden_states)))

    def pre_norm(self, x: Tensor) -> Tensor:
        """The sublayer's input: ``LN(x)`` in a pre-LN model, ``x`` itself in BERT (post-LN)."""
        return self.LayerNorm(x) if self.pre_layer_norm else x


class BertAttention(nn.Module):
    """The attention sublayer: multi-head self-attention, then W^O + residual + LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = MultiHeadSelfAttention(
            config.hidden_size, config.num_attention_heads, config.attention_probs_dropout_prob
        )
        self.output = AddNorm(config.hidden_size, config)

    def forward(
        self, hidden_states: Tensor, attention_mask: Tensor | None, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``(B, T, H)`` -> ``(B, T, H)`` and the probabilities ``(B, nh, T, T)`` or None."""
        context, probs = self.self(self.output.pre_norm(hidden_states), attention_mask, output_attentions)
        return self.output(context, hidden_states), probs


class BertIntermediate(nn.Module):
    """The first half of the feed-forward block: widen to I features, then GELU."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden_states: Tensor) -> Tensor:
        """``(B, T, H)`` -> ``(B, T, I)``."""
        return self.activation(self.dense(hidden_states))


class BertLayer(nn.Module):
    """One encoder layer: attention sublayer, then feed-forward sublayer (each post-LN).

    The feed-forward block acts on every position separately:
    ``FFN(x) = GELU(x W_1 + b_1) W_2 + b_2``, with ``W_1: H x I`` and ``W_2: I x H``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)  # W_1 and GELU
        self.output = AddNorm(config.intermediate_size, config)  # W_2, residual, LayerNorm

    def forward(
        self, hidden_states: Tensor, attention_mask: Tensor | None, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``(B, T, H)`` -> ``(B, T, H)`` and the layer's attention probabilities or None."""
        attended, probs = self.attention(hidden_states, attention_mask, output_attentions)
        return self.output(self.intermediate(self.output.pre_norm(attended)), attended), probs


class BertEncoder(nn.Module):
    """``L`` encoder layers applied in turn."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        if config.pre_layer_norm:  # pre-LN leaves the residual stream un-normalised: one last LN
            self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, hidden_states: Tensor, attention_mask: Tensor | None = None, output_attentions: bool = False
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor | None, ...]]:
        """``(B, T, H)`` -> every layer's input and the last output, ``L + 1`` tensors
        ``(B, T, H)``, and each layer's attention probabilities ``(B, nh, T, T)`` (or None)."""
        all_hidden, all_attentions = [hidden_states], []
        for layer in self.layer:
            hidden_states, probs = layer(hidden_states, attention_mask, output_attentions)  # (B, T, H)
            all_hidden.append(hidden_states)
            all_attentions.append(probs)  # (B, nh, T, T) or None
        if hasattr(self, "final_layer_norm"):
            all_hidden[-1] = self.final_layer_norm(all_hidden[-1])
        return tuple(all_hidden), tuple(all_attentions)


class BertPooler(nn.Module):
    """``tanh(W h_[CLS] + b)``: one vector for the whole sequence, from its first token.

    Pre-training trains it through next-sentence prediction; classifiers start from it.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """``(B, T, H)`` -> ``(B, H)``."""
        return torch.tanh(self.dense(hidden_states[:, 0]))


@dataclass
class BaseModelOutputWithPooling:
    """What ``BertModel`` returns (the names ``transformers`` uses).

    last_hidden_state: ``(B, T, H)``, one vector per token after the last layer.
    pooler_output: ``(B, H)``, the pooled [CLS] vector.
    attentions: ``L`` tensors ``(B, nh, T, T)`` when ``output_attentions=True``, else None.
    hidden_states: ``L + 1`` tensors ``(B, T, H)`` (embeddings, then each layer) when
        ``output_hidden_states=True``, else None.
    """

    last_hidden_state: Tensor
    pooler_output: Tensor
    attentions: tuple[Tensor, ...] | None = None
    hidden_states: tuple[Tensor, ...] | None = None


def init_bert_weights(module: nn.Module, initializer_range: float = 0.02) -> None:
    """BERT's initialisation for one module: use as ``model.apply(init_bert_weights)``.

    Linear and embedding weights ~ N(0, initializer_range^2), biases 0, the [PAD]
    embedding 0, LayerNorm scale 1 and shift 0 (so each starts as a plain normalisation).
    """
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=initializer_range)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=initializer_range)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


class BertModel(nn.Module):
    """The BERT encoder, loadable from any Hugging Face BERT checkpoint folder.

    >>> model = BertModel.from_pretrained(default_checkpoint())
    >>> out = model(input_ids, attention_mask=attention_mask)
    >>> out.last_hidden_state.shape, out.pooler_output.shape   # (B, T, H), (B, H)
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        self.apply(lambda module: init_bert_weights(module, config.initializer_range))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPooling:
        """
        Args:
            input_ids: ``(B, T)`` token ids, ``T <= max_position_embeddings``.
            attention_mask: ``(B, T)``, 1 for real tokens, 0 for padding; None = no padding.
            token_type_ids: ``(B, T)`` segment ids (0 = sentence A, 1 = B); None = all 0.
            output_attentions: also return every layer's attention probabilities (this
                uses the explicit attention path instead of the fused kernel).
            output_hidden_states: also return the input of every layer and the output.
        """
        self.check_inputs(input_ids, attention_mask, token_type_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embedded = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        all_hidden, all_attentions = self.encoder(embedded, attention_mask, output_attentions)
        hidden = all_hidden[-1]  # (B, T, H)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.pooler(hidden),  # (B, H)
            attentions=all_attentions if output_attentions else None,
            hidden_states=all_hidden if output_hidden_states else None,
        )

    def check_inputs(
        self, input_ids: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor | None
    ) -> None:
        """Raise a ValueError that names the problem, instead of an IndexError deep inside."""
        c = self.config
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
            raise ValueError(
                f"input_ids must be a (batch, seq_len) tensor of token ids; got {shape}. "
                f"For a single sequence use input_ids[None]."
            )
        _check_index_dtype("input_ids", input_ids)
        B, T = input_ids.shape
        if T == 0:
            raise ValueError(
                f"input_ids has shape {(B, T)}: sequences of length 0 have no [CLS] token to pool. "
                f"Every sequence needs at least one token ([CLS] ... [SEP] from the tokenizer)."
            )
        if T > c.max_position_embeddings:
            raise ValueError(
                f"Sequence length {T} exceeds max_position_embeddings={c.max_position_embeddings}: "
                f"the model has no position embedding beyond that. Truncate the inputs, e.g. "
                f"tokenizer(texts, truncation=True, max_length={c.max_position_embeddings})."
            )
        _check_range("input_ids", input_ids, c.vocab_size, "vocab_size")
        for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if tensor is not None and tuple(tensor.shape) != (B, T):
                raise ValueError(
                    f"{name} has shape {tuple(tensor.shape)} but input_ids has shape {(B, T)}; "
                    f"they must match, one entry per token."
                )
        if attention_mask is not None:
            _check_range("attention_mask", attention_mask.long(), 2, "0/1 values")
        if token_type_ids is not None:
            _check_index_dtype("token_type_ids", token_type_ids)
            _check_range("token_type_ids", token_type_ids, c.type_vocab_size, "type_vocab_size")

    # -- checkpoints -----------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> BertModel:
        """Load a Hugging Face BERT checkpoint folder (config.json + model.safetensors or
        pytorch_model.bin). Weights may carry a ``bert.`` prefix (as saved by
        pre-training or classification models); their task heads are skipped.

        Returns the model in eval mode (dropout off), as ``transformers`` does.
        """
        folder = checkpoint_folder(path)
        model = cls(BertConfig.from_pretrained(folder))
        model.load_state_dict(encoder_weights(read_state_dict(folder), model, source=folder))
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write config.json and model.safetensors into ``path`` (each atomically)."""
        folder = Path(path)
        self.config.save_pretrained(folder)
        save_state_dict(self.state_dict(), folder / SAFETENSORS_NAME)


# The index types nn.Embedding accepts; uint8 / int16 ids would fail deep inside it.
INDEX_DTYPES = (torch.int64, torch.int32)


def _check_index_dtype(name: str, tensor: Tensor) -> None:
    """Raise a ValueError unless ``tensor`` holds int64 or int32 ids (what embeddings accept)."""
    if tensor.dtype not in INDEX_DTYPES:
        hint = (" uint8 holds only 0..255 and int16 at most 32,767: a 30,522-token vocabulary does not fit."
                if name == "input_ids" and tensor.dtype in (torch.uint8, torch.int8, torch.int16) else "")
        raise ValueError(
            f"{name} must hold integer token ids; got dtype {tensor.dtype}. Embeddings take "
            f"torch.long (int64) or torch.int32.{hint} Convert with {name}.long()."
        )


def _check_range(name: str, tensor: Tensor, high: int, what: str) -> None:
    """Raise if any entry of ``tensor`` lies outside ``[0, high)``, naming the first one.

    Off the CPU it runs only with ``BERTEDU_DEBUG=1`` (``settings.value_checks_enabled``).
    """
    if not value_checks_enabled(tensor):
        return
    bad = (tensor < 0) | (tensor >= high)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name}[{row}, {col}] = {int(tensor[row, col])} is outside [0, {high - 1}] "
            f"({what} = {high}); {_entries(int(bad.sum()))} out of range in all. "
            + ("Was the text tokenized with this model's vocab.txt?" if name == "input_ids" else "")
        )


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


# Buffers some checkpoints store but that we compute on the fly.
IGNORED_KEYS = {"embeddings.position_ids", "embeddings.token_type_ids"}


def encoder_weights(
    state_dict: dict[str, Tensor], model: BertModel, source: object = "the checkpoint"
) -> dict[str, Tensor]:
    """Select and check the encoder's weights in a checkpoint's state dict.

    - Keys with a ``bert.`` prefix (``BertForPreTraining``, classifiers) are the encoder;
      the other keys of such a file (``cls.*``, ``classifier.*``) are task heads, skipped.
    - Old names ``LayerNorm.gamma/beta`` become ``LayerNorm.weight/bias``.
    Raises ValueError naming missing, unexpected and wrongly-shaped weights.
    """
    if any(key.startswith("bert.") for key in state_dict):
        state_dict = {key[len("bert."):]: value for key, value in state_dict.items() if key.startswith("bert.")}
    renamed = {}
    for key, value in state_dict.items():
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        renamed[re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)] = value
    expected = model.state_dict()
    missing = sorted(expected.keys() - renamed.keys())
    unexpected = sorted(renamed.keys() - expected.keys() - IGNORED_KEYS)
    wrong_shape = [
        f"  {key}: checkpoint {tuple(renamed[key].shape)}, config expects {tuple(expected[key].shape)}"
        for key in sorted(expected.keys() & renamed.keys())
        if renamed[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing weight(s): {_some(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weight(s): {_some(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} weight(s) with the wrong shape:\n" + "\n".join(wrong_shape[:8]))
    if problems:
        c = model.config
        layers = {int(m.group(1)) for key in renamed if (m := re.match(r"encoder\.layer\.(\d+)\.", key))}
        raise UserError(
            f"The weights in {source} do not fit a BertModel built from its config.json:\n"
            + "\n".join(problems)
            + f"\nThe config says vocab_size={c.vocab_size}, hidden_size={c.hidden_size}, "
            f"num_hidden_layers={c.num_hidden_layers}, intermediate_size={c.intermediate_size}, "
            f"max_position_embeddings={c.max_position_embeddings}, type_vocab_size={c.type_vocab_size}; "
            f"the weights have {len(layers)} layer(s). Check that config.json belongs to these weights."
        )
    return {key: value for key, value in renamed.items() if key in expected}


def _some(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


# ---------------------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------------------

# (component, pattern on the parameter name), first match wins.
COMPONENTS: list[tuple[str, str]] = [
    ("token embeddings", r"embeddings\.word_embeddings\."),
    ("position embeddings", r"embeddings\.position_embeddings\."),
    ("segment embeddings", r"embeddings\.token_type_embeddings\."),
    ("attention Q, K, V", r"attention\.self\."),
    ("attention output W^O", r"attention\.output\.dense\."),
    ("feed-forward", r"(intermediate|output)\.dense\."),
    ("LayerNorms", r"LayerNorm\."),
    ("pooler", r"pooler\."),
]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per component (summed over layers), in forward order, plus ``total``."""
    counts = {name: 0 for name, _ in COMPONENTS}
    for param_name, param in model.named_parameters():
        component = next((name for name, pattern in COMPONENTS if re.search(pattern, param_name)), "other")
        counts[component] = counts.get(component, 0) + param.numel()
    counts["total"] = sum(counts.values())
    return counts


def count_for_config(config: BertConfig) -> dict[str, int]:
    """``parameter_counts`` of a model with this config, built on the meta device (no memory)."""
    with torch.device("meta"):
        return parameter_counts(BertModel(config))


__all__ = [
    "AddNorm",
    "BertAttention",
    "BertConfig",
    "BertEmbeddings",
    "BertEncoder",
    "BertLayer",
    "BertModel",
    "BaseModelOutputWithPooling",
    "BertPooler",
    "BertIntermediate",
    "count_for_config",
    "encoder_weights",
    "init_bert_weights",
    "parameter_counts",
]
