"""How fast are the course's tokenizers? (chapter 1's speed comparison, with repeats)

Tokenizes the same IMDb training reviews with four tokenizers that all give identical ids:
the pure-Python BERT tokenizer of `transformers` (written like the original BERT code),
bertedu's BertTokenizer without and with its word cache, and the Rust `tokenizers` one.
Reports the best of several repeats, in reviews per second.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/tokenization_speed.py [--reviews 2000] [--repeats 3]

The output of a run is stored next to this file (tokenization_speed.txt).
"""
from __future__ import annotations

import argparse
import os
import platform

import torch
from timing import best_seconds  # benchmarks/timing.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from bertedu.checkpoint import default_checkpoint
    from bertedu.data import load_imdb
    from bertedu.tokenization import BertTokenizer, basic_tokenize, load_fast_tokenizer, load_vocab, wordpiece

    try:
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBertTokenizer
    except ImportError:  # transformers 4
        from transformers import BertTokenizer as SlowBertTokenizer

    vocab_path = default_checkpoint() / "vocab.txt"
    texts = load_imdb("train", n=args.reviews, seed=0).texts
    vocab = load_vocab(vocab_path)
    slow = SlowBertTokenizer(str(vocab_path))
    fast = load_fast_tokenizer(vocab_path)

    candidates = {
        "transformers pure-Python (legacy)": lambda: [slow.encode(t) for t in texts],
        "bertedu, no word cache": lambda: [[p for w in basic_tokenize(t) for p in wordpiece(w, vocab)] for t in texts],
        "bertedu BertTokenizer (fresh cache)": lambda: (lambda tok: [tok.encode(t) for t in texts])(BertTokenizer(vocab)),
        "tokenizers (Rust), one batch call": lambda: fast(texts, truncation=True),
    }
    print(f"{len(texts)} IMDb training reviews, best of {args.repeats} | {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'default')} | "
          f"torch {torch.__version__}")
    for name, function in candidates.items():
        seconds = best_seconds(function, args.repeats)
        print(f"{name:38s} {seconds:6.2f} s  {len(texts) / seconds:8,.0f} reviews/s")


if __name__ == "__main__":
    main()
