"""A tiny pre-training run, shared by the training tests and the DDP test.

Run under ``torchrun --nproc_per_node=2 tests/ddp_worker.py OUT_DIR`` it trains with DDP
(gloo on CPU) and each rank writes ``rank<r>.pt`` (history + final weights) into OUT_DIR.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

from bertedu.model import BertConfig
from bertedu.pretraining import BertForPreTraining
from bertedu.pretraining_data import PretrainingDataset, PretrainingVocab, make_pairs
from bertedu.training import TrainingConfig, init_distributed, train

VOCAB = PretrainingVocab(vocab_size=60, pad_id=0, cls_id=2, sep_id=3, mask_id=4, special_ids=(0, 1, 2, 3, 4))
SEQ_LEN = 32
DDP_STEPS = 6


def tiny_data(seed: int = 0, n_documents: int = 40) -> PretrainingDataset:
    """Random 'documents' of random 'sentences' over a 60-token vocabulary."""
    rng = random.Random(seed)
    documents = [[[rng.randrange(5, VOCAB.vocab_size) for _ in range(rng.randint(3, 9))]
                  for _ in range(rng.randint(2, 8))] for _ in range(n_documents)]
    return PretrainingDataset(make_pairs(documents, max_seq_length=SEQ_LEN, seed=seed), VOCAB,
                              max_seq_length=SEQ_LEN, seed=seed)


def tiny_model(seed: int = 0, dropout: float = 0.0) -> BertForPreTraining:
    config = BertConfig(vocab_size=VOCAB.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=SEQ_LEN,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    return BertForPreTraining(config)


def ddp_config(batch_size: int, grad_accumulation_steps: int = 1) -> TrainingConfig:
    return TrainingConfig(learning_rate=3e-3, max_steps=DDP_STEPS, batch_size=batch_size,
                          grad_accumulation_steps=grad_accumulation_steps, warmup_steps=2, progress=False)


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    rank, world_size = init_distributed()
    assert world_size == 2, f"expected 2 processes, got {world_size}"
    model = tiny_model()
    # A global batch of 8: 4 examples on each of the 2 processes.
    history = train(model, tiny_data(), ddp_config(batch_size=4), track=("mlm_loss", "nsp_loss"))
    torch.save({"history": history.to_dict(), "state": model.state_dict(), "world_size": world_size},
               Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
