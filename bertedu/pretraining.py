"""Chapter 4: pre-train a small BERT with masked language modelling (MLM) and next-sentence
prediction (NSP) on IMDb review text.

    [CLS] A [SEP] B [SEP] (15% corrupted) ─> BertModel ─┬─> last_hidden_state (B, T, H) ─> MLM head ─> (N, V)
                                                        └─> pooler_output (B, H) ───────> NSP head ─> (B, 2)
    loss = cross-entropy over the N selected tokens + cross-entropy over IsNext/NotNext

The MLM head's output matrix *is* the word-embedding matrix (weight tying): predicting a
token and reading one share one table of token vectors. Weight names follow Hugging
Face's ``BertForPreTraining`` (``bert.*``, ``cls.predictions.*``,
``cls.seq_relationship.*``), so a saved model loads in ``transformers`` too.

Entry points: ``prepare_pretraining_data`` (IMDb train text -> datasets),
``BertForPreTraining``, ``evaluate_pretraining``, ``pretrain`` (the whole run, as
``bertedu pretrain`` does it), ``fill_mask`` and ``pretrained_small_bert`` (chapter 5's
starting point). The data side (sentences, pairs, ``mask_tokens``) lives in
``bertedu/pretraining_data.py``.
"""
from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertedu.checkpoint import (
    CONFIG_NAME,
    SAFETENSORS_NAME,
    VOCAB_NAME,
    read_state_dict,
    save_state_dict,
)
from bertedu.errors import UserError
from bertedu.files import atomic_write, write_json
from bertedu.model import ACTIVATIONS, BertConfig, BertModel, init_bert_weights
from bertedu.paths import checkpoints_dir
from bertedu.pretraining_data import (  # noqa: F401  (mask_tokens is part of this module's API)
    IGNORE_INDEX,
    IS_NEXT,
    NOT_NEXT,
    PretrainingDataset,
    PretrainingVocab,
    SegmentPair,
    make_pairs,
    mask_tokens,
    split_sentences,
)
from bertedu.settings import cpu_bf16_attention, evaluating, is_quick, model_device, select_device
from bertedu.settings import pick as pick_by_mode
from bertedu.training import (
    TrainingConfig,
    TrainingHistory,
    init_distributed,
    prepare_run_dir,
    train,
)

PRETRAINED_NAME = "ch4-pretrained"  # chapter 5 looks here
RUN_NAME = "ch4-pretraining-run"    # training checkpoints (resume) live here
SHIPPED_PRESET = "small-bert"       # the preset of the model in bertedu/resources/small-bert
CHAPTER5_REVIEWS, CHAPTER5_SEED = 2_200, 0  # load_imdb("train", n=2200, seed=0): chapter 5's train + validation

# ---------------------------------------------------------------------------------------
# The model: BertModel + two heads
# ---------------------------------------------------------------------------------------


class BertPredictionHeadTransform(nn.Module):
    """One more dense layer + activation + LayerNorm before predicting tokens: (B, T, H) -> (B, T, H)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    """Scores over the vocabulary: (..., H) -> (..., V).

    ``decoder.weight`` is tied to the word embeddings (set by ``BertForPreTraining``);
    ``bias`` is the head's own, one number per token.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden)) + self.bias


class BertPreTrainingHeads(nn.Module):
    """``predictions``: the MLM head on every token; ``seq_relationship``: NSP on [CLS]."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)  # IsNext / NotNext


@dataclass
class BertForPreTrainingOutput:
    """What ``BertForPreTraining`` returns.

    loss: mlm_loss + nsp_loss (whichever labels were given), a scalar, or None.
    mlm_loss, nsp_loss: the two parts of ``loss`` (None without their labels).
    prediction_logits: the MLM scores, ``(B, T, V)`` without MLM labels; with them only the
        N selected positions are scored, ``(N, V)`` in row-major order (the original BERT's
        gather trick: the other 85% of positions would cost most of the head's compute for
        nothing).
    seq_relationship_logits: the NSP scores ``(B, 2)``, index 0 = IsNext, 1 = NotNext.
    """

    loss: Tensor | None
    mlm_loss: Tensor | None
    nsp_loss: Tensor | None
    prediction_logits: Tensor
    seq_relationship_logits: Tensor


class BertForPreTraining(nn.Module):
    """BERT with its two pre-training heads; losses summed as in the paper."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.cls.apply(lambda module: init_bert_weights(module, config.initializer_range))
        self.tie_weights()

    def tie_weights(self) -> None:
        """Make the MLM decoder use the word-embedding matrix itself (one Parameter, two uses)."""
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        next_sentence_label: Tensor | None = None,
    ) -> BertForPreTrainingOutput:
        """
        Args:
            input_ids, attention_mask, token_type_ids: ``(B, T)``, as for ``BertModel``.
            labels: ``(B, T)`` original ids at the selected positions, -100 elsewhere.
            next_sentence_label: ``(B,)`` 0 = IsNext, 1 = NotNext.
        """
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        nsp_logits = self.cls.seq_relationship(out.pooler_output)  # (B, 2)
        mlm_loss = nsp_loss = None
        if labels is None:
            mlm_logits = self.cls.predictions(out.last_hidden_state)  # (B, T, V)
        else:
            selected = labels != IGNORE_INDEX  # (B, T)
            mlm_logits = self.cls.predictions(out.last_hidden_state[selected])  # (N, V)
            # A sum over N tokens / N, written so that N = 0 gives 0 rather than NaN.
            mlm_loss = F.cross_entropy(mlm_logits.float(), labels[selected], reduction="sum") / selected.sum().clamp(min=1)
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.view(-1))
        losses = [x for x in (mlm_loss, nsp_loss) if x is not None]
        return BertForPreTrainingOutput(sum(losses) if losses else None, mlm_loss, nsp_loss, mlm_logits, nsp_logits)

    def save_pretrained(self, path: str | os.PathLike, vocab_file: str | os.PathLike | None = None) -> Path:
        """Write config.json, model.safetensors (and vocab.txt) in the Hugging Face layout.

        The tied decoder weight is stored once, as the word embeddings (as ``transformers``
        does). Each file is written atomically; the weights come last.
        """
        folder = Path(path)
        if vocab_file is not None:
            if Path(vocab_file).resolve() != (folder / VOCAB_NAME).resolve():
                atomic_write(folder / VOCAB_NAME, lambda tmp: shutil.copyfile(vocab_file, tmp))
        write_json(folder / CONFIG_NAME, {**self.config.to_dict(), "architectures": ["BertForPreTraining"]})
        state = {k: v for k, v in self.state_dict().items() if k != "cls.predictions.decoder.weight"}
        save_state_dict(state, folder / SAFETENSORS_NAME)
        return folder

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> BertForPreTraining:
        """Load a folder written by ``save_pretrained`` (or by transformers' BertForPreTraining)."""
        folder = Path(path)
        model = cls(BertConfig.from_pretrained(folder))
        state = read_state_dict(folder)
        for tied in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "bert.embeddings.position_ids"):
            state.pop(tied, None)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "cls.predictions.decoder.weight"]
        if missing or unexpected:
            raise UserError(
                f"{folder} does not hold a BertForPreTraining: missing {missing[:6]}, unexpected "
                f"{unexpected[:6]}. For an encoder without heads use BertModel.from_pretrained."
            )
        model.tie_weights()
        return model.eval()


def unigram_log_prior(input_ids: Tensor, vocab_size: int, special_ids: Sequence[int] = ()) -> Tensor:
    """``log P(token)`` over the ordinary tokens of ``input_ids`` (any shape) -> ``(V,)``.

    Counts are add-one smoothed, so a token never seen (and every special token, which MLM
    never asks for) gets a finite, very low log-probability.
    """
    ids = input_ids.flatten()
    ids = ids[~torch.isin(ids, torch.tensor(list(special_ids), dtype=ids.dtype, device=ids.device))]
    counts = torch.bincount(ids.cpu(), minlength=vocab_size).double() + 1.0  # (V,)
    return (counts / counts.sum()).log().float()


def init_mlm_bias(model: BertForPreTraining, dataset: PretrainingDataset) -> Tensor:
    """Start the MLM head at the corpus's unigram distribution: ``bias = log P(token)``.

    With a zero bias the first hundreds of steps go into learning *which tokens are frequent*,
    and with tied embeddings much of it lands in the word-embedding matrix: every token vector
    drifts along one shared "frequency" direction (mean pairwise cosine 0.335 after chapter 4's
    600 quick steps, 0.000 at random initialisation), and those vectors are what fine-tuning
    starts from. Starting the bias at the log-prior (the "init well" advice of Karpathy's
    recipe for training neural nets) gives the frequencies to the bias from step 0: the initial
    MLM loss is the unigram entropy instead of ln V, and the embeddings stay spread out (0.027
    after the same 600 steps; ``benchmarks/mlm_bias_prior.txt``). Returns the prior ``(V,)``.
    """
    if len(dataset) == 0:
        raise ValueError("init_mlm_bias counts the tokens of the training pairs, and this dataset has none: "
                         "give it more text (or fewer held-out reviews).")
    prior = unigram_log_prior(dataset.tensors["input_ids"], model.config.vocab_size, dataset.vocab.special_ids)
    with torch.no_grad():
        model.cls.predictions.bias.copy_(prior)
    return prior


def sinusoidal_positions(n_positions: int, hidden_size: int) -> Tensor:
    """The Transformer's position vectors (Vaswani et al. 2017, section 3.5) -> ``(T, H)``.

    ``P[t, 2i] = sin(t / 10000^(2i/H))``, ``P[t, 2i+1] = cos(...)``: the dot product of two
    rows depends only on their distance and is largest for neighbours.
    """
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = 10000.0 ** (-torch.arange(0, hidden_size, 2, dtype=torch.float32) / hidden_size)  # (H/2,)
    table = torch.zeros(n_positions, hidden_size)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, :hidden_size // 2]  # an odd H has one sine more
    return table


def init_local_attention(model: BertForPreTraining, position_std: float | None = 0.05,
                         query_key_scale: float = 1.0) -> None:
    """Start attention looking at each token's neighbours instead of at everything equally.

    BERT's random initialisation makes every attention row nearly uniform: a ``[MASK]``
    averages all 128 positions, its neighbours weigh 1/128 each, and learning to single them
    out is slow (the MLM plateau of chapter 4). Two starting values, no change of the model:

    * the learned position embeddings start at ``sinusoidal_positions`` scaled to
      ``position_std`` (2.5 times the word embeddings' 0.02, so that after the embedding
      LayerNorm a token's vector says much about *where* it is; None keeps BERT's random ones);
    * every layer's query and key matrices start at ``query_key_scale * I`` plus BERT's random
      noise (a "mimetic" initialisation, Trockman & Kolter 2023), so a query matches the keys
      of similar vectors: its own position and the nearby ones (0 keeps BERT's random ones).

    Neither helps alone; together (positions at 0.1) they lift chapter 4's 600-step MLM
    accuracy from 11.4% to 17.6% (``benchmarks/pretraining_recipe.txt``). The default 0.05
    keeps most of that gain (16.9%), and in chapter 5 the run, its attention drawn again and
    its embedding tables rescaled (point 1c), fine-tunes as well as random weights, where a
    run at 0.1 stays behind (``benchmarks/quick_run_levers.txt``; as saved, both stay far
    behind). Both are starting values only: training
    changes them like any other weight, and the model saves and loads as an ordinary BERT.
    """
    if (position_std is not None and not position_std > 0) or not query_key_scale >= 0:
        raise ValueError(f"init_local_attention needs position_std > 0 and query_key_scale >= 0, "
                         f"got {position_std} and {query_key_scale}.")
    config = model.config
    with torch.no_grad():
        if position_std is not None:
            positions = model.bert.embeddings.position_embeddings.weight  # (T, H)
            table = sinusoidal_positions(*positions.shape)
            positions.copy_(table * (position_std / table.std()))
        for layer in model.bert.encoder.layer if query_key_scale else ():
            attention = layer.attention.self
            for linear in (attention.query, attention.key):
                noise = torch.randn_like(linear.weight) * config.initializer_range  # (H, H)
                linear.weight.copy_(query_key_scale * torch.eye(config.hidden_size) + noise)


# ---------------------------------------------------------------------------------------
# Data: IMDb train text -> PretrainingDataset
# ---------------------------------------------------------------------------------------


def tokenize_documents(texts: Sequence[str], tokenizer: Any) -> list[list[list[int]]]:
    """Each text -> its sentences -> token ids (no special tokens): ``docs[d][s] = [ids]``."""
    sentences = [split_sentences(text) for text in texts]
    flat = [s for doc in sentences for s in doc]
    # verbose=False: no "longer than 512 ... indexing errors" warning; make_pairs cuts long sentences
    ids = tokenizer(flat, add_special_tokens=False, verbose=False)["input_ids"] if flat else []
    documents, start = [], 0
    for doc in sentences:
        documents.append(ids[start:start + len(doc)])
        start += len(doc)
    return documents


def build_pretraining_dataset(texts: Sequence[str], tokenizer: Any, *, max_seq_length: int = 128,
                              whole_word: bool = False, seed: int = 0, nsp: bool = True) -> PretrainingDataset:
    """Texts -> sentences -> NSP pairs -> a dataset that masks every pair each epoch."""
    documents = tokenize_documents(texts, tokenizer)
    pairs = make_pairs(documents, max_seq_length=max_seq_length, seed=seed)
    return PretrainingDataset(pairs, PretrainingVocab.from_tokenizer(tokenizer), max_seq_length=max_seq_length,
                              whole_word=whole_word, seed=seed, nsp=nsp)


# ---------------------------------------------------------------------------------------
# Settings: quick (2 CPU cores, minutes), full (a GPU) and the shipped model's preset
# ---------------------------------------------------------------------------------------


@dataclass
class PretrainingSettings:
    """Data, model size and optimisation of one pre-training run."""

    n_reviews: int | None          # IMDb train reviews to learn from (None: every one allowed, see
                                   # pretraining_corpus); never chapter 5's reviews, never test
    n_validation: int              # held-out train reviews for MLM/NSP accuracy
    max_seq_length: int
    vocab_size: int                # of the course's IMDb WordPiece vocabulary
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    training: TrainingConfig = field(default_factory=TrainingConfig)
    whole_word: bool = False
    dropout: float = 0.0           # while pre-training (Cramming: none); the saved config says 0.1
    pre_layer_norm: bool = False   # LayerNorm before each sublayer instead of after the residual
    nsp: bool = True               # False: MLM only (the NSP head is still evaluated, untrained)
    mlm_bias_prior: bool = True    # start the MLM bias at log unigram frequencies (init_mlm_bias)
    local_attention: bool = True   # start attention at the neighbours (init_local_attention)
    eval_batch_size: int = 64
    seed: int = 0

    def model_config(self, dropout: float | None = None) -> BertConfig:
        """The model's config; ``dropout`` overrides the pre-training rate (e.g. 0.1 to save)."""
        rate = self.dropout if dropout is None else dropout
        extra = {"pre_layer_norm": True} if self.pre_layer_norm else {}
        return BertConfig(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                          num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
                          intermediate_size=self.intermediate_size, max_position_embeddings=self.max_seq_length,
                          hidden_dropout_prob=rate, attention_probs_dropout_prob=rate, **extra)


def pretraining_settings(quick: bool | None = None) -> PretrainingSettings:
    """The chapter's settings for quick or full mode (None: ``BERTEDU_QUICK`` decides).

    The "local, 0.05" row of ``benchmarks/pretraining_recipe.txt`` (quick mode trains it for
    1,200 steps, twice the table's), which measures each part of the budget literature's
    recipe (Geiping & Goldstein 2022; Izsak et al. 2021): post-LN, no dropout, the MLM head
    only on the masked positions, a one-cycle schedule (warm-up for half the steps, then
    linear decay) peaking at 2e-3, sequences of 128 tokens, and the MLM
    bias started at the corpus's log token frequencies (``init_mlm_bias``;
    ``benchmarks/mlm_bias_prior.txt`` measures what it does for fine-tuning), and attention
    started at each token's neighbours (``init_local_attention``; measured in quick mode only,
    where it lifts MLM accuracy; with positions at 0.1 it lowered chapter 5's fine-tuned
    accuracy, ``benchmarks/small_bert_seeds.txt``, at 0.05 the rescaled run is level with random
    weights, ``benchmarks/quick_run_levers.txt``).
    """
    pick = functools.partial(pick_by_mode, mode=is_quick(quick))
    return PretrainingSettings(
        n_reviews=pick(quick=3_000, full=None),
        n_validation=pick(quick=300, full=1_000),
        max_seq_length=128,
        vocab_size=8_000,
        hidden_size=pick(quick=128, full=256),
        num_hidden_layers=pick(quick=2, full=4),
        num_attention_heads=pick(quick=2, full=4),
        intermediate_size=pick(quick=512, full=1024),
        training=TrainingConfig(
            learning_rate=2e-3,
            max_steps=pick(quick=1_200, full=20_000),
            batch_size=pick(quick=32, full=128),
            warmup_ratio=0.5,
            eval_every=pick(quick=200, full=1_000),
            eval_at_start=True,
            checkpoint_every=pick(quick=200, full=1_000),
        ),
    )


def shipped_settings() -> PretrainingSettings:
    """The preset of the small BERT that ships with the package (``bertedu pretrain --preset small-bert``).

    The quick run's model and recipe (2 layers, hidden 128, post-LN, no dropout, the MLM
    bias started at the log token frequencies, the one-cycle schedule of
    ``benchmarks/pretraining_recipe.txt``, batches of 32 x 128 tokens), trained for longer:
    65 minutes of wall-clock time (``TrainingConfig.max_minutes``: the schedule runs over
    time, so a busy machine gets fewer steps but a complete schedule), with bf16 autocast on
    a CPU (``TrainingConfig.cpu_bf16``; ``pretrain`` adds SDPA's math kernel for attention there,
    ``settings.cpu_bf16_attention``). The same architecture as the learner's run, so chapter 4
    compares the two on one compute axis and chapter 5's random-weights row is its control.
    ``MODEL_CARD.md`` beside the weights says what it took and what it reached.

    It starts attention like BERT, at random (``local_attention=False``): the shipped weights
    were trained before the quick run adopted ``init_local_attention``, and the preset
    reproduces them.
    """
    quick = pretraining_settings(quick=True)
    return replace(quick, n_reviews=None, n_validation=500, local_attention=False,
                   training=replace(quick.training, max_steps=1_000_000, max_minutes=65, eval_every=1_000,
                                    checkpoint_every=250, cpu_bf16=True))


PRESETS = {
    "quick": lambda: pretraining_settings(quick=True),
    "full": lambda: pretraining_settings(quick=False),
    SHIPPED_PRESET: shipped_settings,
}


def pretraining_preset(name: str) -> PretrainingSettings:
    """The settings of a named preset: ``quick``, ``full`` or ``small-bert`` (the shipped model)."""
    if name not in PRESETS:
        raise UserError(f"Unknown pre-training preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]()


def new_pretraining_model(settings: PretrainingSettings, train_data: PretrainingDataset) -> BertForPreTraining:
    """The untrained model of a run: seeded by ``settings.seed`` (the same weights in every
    process and on every re-run), its MLM bias at the log token frequencies of ``train_data``
    when ``settings.mlm_bias_prior`` (``init_mlm_bias``), zero otherwise, and its attention
    started at the neighbours when ``settings.local_attention`` (``init_local_attention``)."""
    torch.manual_seed(settings.seed)
    model = BertForPreTraining(settings.model_config())
    if settings.mlm_bias_prior:
        init_mlm_bias(model, train_data)
    if settings.local_attention:
        init_local_attention(model)
    return model


def pretraining_corpus(n_reviews: int | None, n_validation: int, seed: int = 0) -> tuple[Any, Any]:
    """(train, held-out) IMDb reviews for pre-training: never chapter 5's, never test.

    Chapter 5 fine-tunes on ``load_imdb("train", n=2200, seed=0)`` (2,000 train + 200
    validation reviews) and tests on IMDb *test*. Pre-training draws from the other 22,800
    train reviews only: a model that has read chapter 5's validation reviews while
    pre-training would be judged on text it has partly memorised. The held-out reviews
    (for MLM accuracy) come first, then up to ``n_reviews`` for training (None: all the rest).
    """
    from bertedu.data import ReviewSet, balanced_subsample, load_imdb

    reserved = load_imdb("train", n=CHAPTER5_REVIEWS, seed=CHAPTER5_SEED)
    taken = {(r.label, r.review_id) for r in reserved}
    pool = ReviewSet((r for r in load_imdb("train") if (r.label, r.review_id) not in taken), "train")
    shuffled = balanced_subsample(pool, len(pool) - len(pool) % 2, seed)
    validation = shuffled[:n_validation]
    rest = shuffled[n_validation:]
    if n_reviews is not None and n_reviews > len(rest):
        raise UserError(f"Pre-training can use {len(rest)} IMDb train reviews outside chapter 5's; "
                        f"asked for {n_reviews}. Lower n_reviews.")
    return (rest if n_reviews is None else rest[:n_reviews]), validation


def prepare_pretraining_data(settings: PretrainingSettings) -> tuple[Any, PretrainingDataset, PretrainingDataset]:
    """(tokenizer, train dataset, validation dataset) from the reviews of ``pretraining_corpus``."""
    from bertedu.tokenization import imdb_wordpiece_vocab, load_fast_tokenizer

    tokenizer = load_fast_tokenizer(imdb_wordpiece_vocab(settings.vocab_size))
    train_reviews, validation_reviews = pretraining_corpus(settings.n_reviews, settings.n_validation, settings.seed)
    build = dict(max_seq_length=settings.max_seq_length, whole_word=settings.whole_word)
    return (tokenizer,
            build_pretraining_dataset(train_reviews.texts, tokenizer, seed=settings.seed, nsp=settings.nsp, **build),
            build_pretraining_dataset(validation_reviews.texts, tokenizer, seed=settings.seed + 1, **build))


# ---------------------------------------------------------------------------------------
# Evaluation and use
# ---------------------------------------------------------------------------------------


def _evaluation_batches(model: BertForPreTraining, dataset: PretrainingDataset,
                        batch_size: int) -> Iterator[tuple[dict[str, Tensor], BertForPreTrainingOutput]]:
    """(batch, output) over ``dataset`` with its fixed epoch-0 masks, the model in eval mode."""
    dataset.set_epoch(0)
    device = model_device(model)
    with evaluating(model):
        for start in range(0, len(dataset), batch_size):
            batch = {k: v.to(device) for k, v in dataset.batch(slice(start, start + batch_size)).items()}
            if "next_sentence_label" not in batch:  # an MLM-only dataset: NSP is still measured
                batch["next_sentence_label"] = dataset.tensors["next_sentence_label"][start:start + batch_size].to(device)
            yield batch, model(**batch)


def evaluate_pretraining(model: BertForPreTraining, dataset: PretrainingDataset, batch_size: int = 64) -> dict[str, float]:
    """MLM loss and accuracy (over the selected tokens) and NSP loss and accuracy (over pairs).

    The masks of ``dataset`` are fixed (epoch 0), so every evaluation asks the same questions.
    """
    totals = dict(mlm_loss=0.0, mlm_correct=0.0, mlm_count=0.0, nsp_loss=0.0, nsp_correct=0.0, nsp_count=0.0)
    for batch, out in _evaluation_batches(model, dataset, batch_size):
        targets = batch["labels"][batch["labels"] != IGNORE_INDEX]  # (N,)
        totals["mlm_loss"] += F.cross_entropy(out.prediction_logits.float(), targets, reduction="sum").item()
        totals["mlm_correct"] += (out.prediction_logits.argmax(-1) == targets).sum().item()
        totals["mlm_count"] += len(targets)
        nsp_targets = batch["next_sentence_label"]
        totals["nsp_loss"] += F.cross_entropy(out.seq_relationship_logits.float(), nsp_targets, reduction="sum").item()
        totals["nsp_correct"] += (out.seq_relationship_logits.argmax(-1) == nsp_targets).sum().item()
        totals["nsp_count"] += len(nsp_targets)
    return {
        "mlm_loss": totals["mlm_loss"] / max(1, totals["mlm_count"]),
        "mlm_accuracy": totals["mlm_correct"] / max(1, totals["mlm_count"]),
        "nsp_loss": totals["nsp_loss"] / max(1, totals["nsp_count"]),
        "nsp_accuracy": totals["nsp_correct"] / max(1, totals["nsp_count"]),
    }


INPUT_KINDS = ("[MASK]", "random word", "unchanged")  # what the input shows at a selected position (80/10/10)


def mlm_accuracy_by_input(model: BertForPreTraining, dataset: PretrainingDataset,
                          batch_size: int = 64) -> dict[str, dict[str, float]]:
    """The MLM accuracy of ``evaluate_pretraining``, split by what the input showed there.

    Returns ``{kind: {"accuracy": a, "count": n}}`` for each of ``INPUT_KINDS``. At an
    *unchanged* position the answer is in the input (a model that copies it is right), at a
    ``[MASK]`` position only the context can tell: the overall accuracy mixes the two.
    """
    mask_id = dataset.vocab.mask_id
    correct, count = torch.zeros(3), torch.zeros(3)
    for batch, out in _evaluation_batches(model, dataset, batch_size):
        selected = batch["labels"] != IGNORE_INDEX  # (B, T)
        targets, shown = batch["labels"][selected], batch["input_ids"][selected]  # (N,), (N,)
        kind = torch.where(shown == mask_id, 0, torch.where(shown == targets, 2, 1))  # (N,) index into INPUT_KINDS
        right = (out.prediction_logits.argmax(-1) == targets).float().cpu()
        correct += torch.bincount(kind.cpu(), weights=right, minlength=3)
        count += torch.bincount(kind.cpu(), minlength=3)
    return {name: {"accuracy": float(correct[i] / max(1.0, float(count[i]))), "count": int(count[i])}
            for i, name in enumerate(INPUT_KINDS)}


def fill_mask(model: BertForPreTraining, tokenizer: Any, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The model's ``top_k`` (token, probability) guesses for each ``[MASK]`` in ``text``."""
    if tokenizer.mask_token not in text:
        raise ValueError(f"Put at least one {tokenizer.mask_token} in the text, e.g. 'this movie was [MASK] .'")
    encoded = tokenizer(text, return_tensors="pt", truncation=True, max_length=model.config.max_position_embeddings)
    device = model_device(model)
    with evaluating(model):
        logits = model(encoded["input_ids"].to(device), attention_mask=encoded["attention_mask"].to(device),
                       token_type_ids=encoded["token_type_ids"].to(device)).prediction_logits[0]  # (T, V)
    guesses = []
    for position in (encoded["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist():
        probs, ids = logits[position].float().softmax(-1).topk(top_k)
        guesses.append([(tokenizer.convert_ids_to_tokens(i), round(p, 4)) for i, p in zip(ids.tolist(), probs.tolist())])
    return guesses


@dataclass
class MaskedWordProbe:
    """A fixed exam for MLM: one masked word per text, the same for every model.

    input_ids, attention_mask: ``(N, T)``, ``[CLS] text [SEP]`` with one word replaced by
    ``[MASK]``; positions: ``(N,)`` where the mask is; targets: ``(N,)`` the original ids.
    """

    input_ids: Tensor
    attention_mask: Tensor
    positions: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return len(self.targets)


def masked_word_probe(tokenizer: Any, n_words: int = 400, seed: int = 0, max_seq_length: int = 128) -> MaskedWordProbe:
    """Mask one whole word (a single WordPiece token made of letters) in each of ``n_words``
    IMDb *test* reviews (``load_imdb("test", n=n_words, seed=seed)``), at a random position of
    the review's first ``max_seq_length - 2`` tokens. Test reviews: no model of the course has
    pre-trained on them."""
    from bertedu.data import load_imdb

    reviews = load_imdb("test", n=n_words, seed=seed)
    encoded = tokenizer(reviews.texts, truncation=True, max_length=max_seq_length, padding="max_length",
                        return_tensors="pt")
    ids = encoded["input_ids"]  # (N, T)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    is_word = torch.tensor([t.isalpha() for t in tokens])  # (V,) whole words: "##" pieces are not alphabetic
    starts_piece = torch.tensor([t.startswith("##") for t in tokens])
    follows = torch.cat([starts_piece[ids[:, 1:]], torch.zeros(len(ids), 1, dtype=torch.bool)], dim=1)
    candidates = is_word[ids] & ~follows  # (N, T) a word that is not continued by a "##" piece
    rng = torch.Generator().manual_seed(seed)
    scores = torch.rand(ids.shape, generator=rng).masked_fill(~candidates, -1.0)
    positions = scores.argmax(dim=1)  # (N,) one random candidate per review
    keep = candidates[torch.arange(len(ids)), positions]
    ids, positions = ids[keep], positions[keep]
    targets = ids[torch.arange(len(ids)), positions].clone()
    ids = ids.clone()
    ids[torch.arange(len(ids)), positions] = tokenizer.mask_token_id
    return MaskedWordProbe(ids, encoded["attention_mask"][keep], positions, targets)


def probe_accuracy(model: BertForPreTraining, probe: MaskedWordProbe, batch_size: int = 64) -> dict[str, float]:
    """How often the original word is the model's first guess (top1) and among its first five (top5)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    hits1 = hits5 = 0
    with torch.no_grad():
        for start in range(0, len(probe), batch_size):
            rows = slice(start, start + batch_size)
            logits = model(probe.input_ids[rows].to(device), attention_mask=probe.attention_mask[rows].to(device)
                           ).prediction_logits  # (b, T, V)
            at_mask = logits[torch.arange(len(logits)), probe.positions[rows].to(device)]  # (b, V)
            top5 = at_mask.topk(5, dim=-1).indices.cpu()  # (b, 5)
            targets = probe.targets[rows]
            hits1 += int((top5[:, 0] == targets).sum())
            hits5 += int((top5 == targets[:, None]).any(dim=1).sum())
    model.train(was_training)
    return {"top1": hits1 / len(probe), "top5": hits5 / len(probe), "n": len(probe)}


# ---------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------


@dataclass
class PretrainingRun:
    model: BertForPreTraining
    tokenizer: Any
    history: TrainingHistory
    settings: PretrainingSettings
    output_dir: Path | None


def pretrain(
    settings: PretrainingSettings | None = None,
    *,
    output_dir: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> PretrainingRun:
    """Prepare data, build the model, train, save: what ``bertedu pretrain`` runs.

    Under ``torchrun`` each of the N processes takes 1/N of the global batch, so the run
    follows the single-process curve. ``checkpoint_dir`` keeps resumable checkpoints of
    this run only (``prepare_run_dir``; ``fresh=True`` empties it first, if it is a run
    folder); rank 0 saves the model to ``output_dir``.
    """
    import torch.distributed as dist

    settings = settings or pretraining_settings()
    rank, world_size = init_distributed()
    config = settings.training
    if config.batch_size % world_size:
        raise ValueError(f"The global batch of {config.batch_size} does not split over {world_size} processes; "
                         "pick a process count that divides it.")
    config = replace(config, batch_size=config.batch_size // world_size, progress=progress and config.progress)
    if checkpoint_dir is not None and rank == 0:  # resume only this run; fresh: empty only a run folder
        description = asdict(settings)
        description["training"].pop("progress")
        prepare_run_dir(checkpoint_dir, description, fresh)
    if rank == 0:  # the vocabulary is trained on first use: once, not by every process at once
        from bertedu.tokenization import imdb_wordpiece_vocab
        imdb_wordpiece_vocab(settings.vocab_size)
    if dist.is_initialized():
        dist.barrier()

    tokenizer, train_data, validation_data = prepare_pretraining_data(settings)
    model = new_pretraining_model(settings, train_data)  # the same initial weights in every process
    with cpu_bf16_attention(select_device(), config.cpu_bf16):  # the math kernel under CPU bf16
        history = train(model, train_data, config, collate_fn=train_data.collate,
                        evaluate=lambda m: evaluate_pretraining(m, validation_data, settings.eval_batch_size),
                        checkpoint_dir=checkpoint_dir, track=("mlm_loss", "nsp_loss"))
    model.to("cpu").eval()
    model.config = settings.model_config(dropout=0.1)  # what fine-tuning starts from (BERT's rate)
    if output_dir is not None and rank == 0:
        from bertedu.tokenization import imdb_wordpiece_vocab
        model.save_pretrained(output_dir, vocab_file=imdb_wordpiece_vocab(settings.vocab_size))
    return PretrainingRun(model, tokenizer, history, settings, Path(output_dir) if output_dir else None)


def pretrained_small_bert(progress: bool = True) -> Path:
    """The folder of chapter 4's pre-trained small BERT (config.json, model.safetensors, vocab.txt).

    If chapter 4 was skipped, pre-train one now with the quick settings (a few minutes on
    a CPU) and say so; ``progress=False``: without a progress bar.
    """
    folder = checkpoints_dir(PRETRAINED_NAME)
    if all((folder / name).is_file() for name in (CONFIG_NAME, SAFETENSORS_NAME, VOCAB_NAME)):
        return folder
    print(f"No chapter-4 model in {folder}: pre-training a small BERT now with the quick "
          "settings (a few minutes on a laptop CPU). Run chapter 4 to see how it learns.")
    pretrain(pretraining_settings(quick=True), output_dir=folder,
             checkpoint_dir=checkpoints_dir(RUN_NAME + "-quick"), fresh=True, progress=progress)
    return folder


SHIPPED_DIR = Path(__file__).resolve().parent / "resources" / SHIPPED_PRESET
CHECKSUMS_NAME = "SHA256SUMS"  # beside the shipped weights: one "<sha256>  <file>" line per file


def shipped_small_bert() -> Path:
    """The folder of the small BERT that ships with the package: pre-trained for about an hour.

    Holds config.json, model.safetensors, vocab.txt (load it with
    ``BertForPreTraining.from_pretrained``) and MODEL_CARD.md (how it was made). Offline,
    instant. Every file is checked against ``SHA256SUMS``; a missing or damaged one raises a
    ``UserError`` naming the file and how to restore it.
    """
    folder = SHIPPED_DIR
    restore = ("Restore it with `git checkout -- bertedu/resources/small-bert` in a clone, or reinstall "
               "bertedu (pip install --force-reinstall --no-deps bertedu); or re-create it with "
               f"`bertedu pretrain --preset {SHIPPED_PRESET} --output {folder}` (about an hour on a CPU).")
    sums = folder / CHECKSUMS_NAME
    if not sums.is_file():
        raise UserError(f"The shipped small BERT is missing: no {sums}. {restore}")
    for line in sums.read_text(encoding="utf-8").splitlines():
        expected, name = line.split(maxsplit=1)
        path = folder / name.strip()
        if not path.is_file():
            raise UserError(f"The shipped small BERT is missing {path}. {restore}")
        if file_sha256(path) != expected:
            raise UserError(f"The shipped small BERT is damaged: {path} does not match its checksum. {restore}")
    return folder


def small_bert_mismatch(folder: str | os.PathLike, other: str | os.PathLike) -> str | None:
    """What differs between two BERT folders' architecture (config.json) and vocabulary
    (vocab.txt), as a sentence; None when they are the same, so that one set of encoded
    reviews serves both (chapter 5a's shipped and quick small BERTs)."""
    folder, other = Path(folder), Path(other)
    differing = []
    if BertConfig.from_pretrained(folder).to_dict() != BertConfig.from_pretrained(other).to_dict():
        differing.append("architecture (config.json)")
    if (folder / VOCAB_NAME).read_bytes() != (other / VOCAB_NAME).read_bytes():
        differing.append("vocabulary (vocab.txt)")
    return f"{folder} and {other} differ in {' and '.join(differing)}" if differing else None


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path, names: Sequence[str] = (CONFIG_NAME, SAFETENSORS_NAME, VOCAB_NAME)) -> None:
    """Write ``SHA256SUMS`` for the model files in ``folder`` (what ``shipped_small_bert`` checks)."""
    from bertedu.files import write_text

    write_text(folder / CHECKSUMS_NAME, "".join(f"{file_sha256(folder / name)}  {name}\n" for name in names))
