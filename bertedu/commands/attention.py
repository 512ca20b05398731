"""``bertedu attention "TEXT" [--model PATH] -o view.html``: an offline attention viewer page.

Runs the text (or a pair, with ``--pair``) through a BERT checkpoint with bertedu's own
model and writes one self-contained HTML page (``bertedu.attention_view``): head view and
model view for every layer and head, no internet needed to open it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bertedu.errors import UserError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the sentence to look at (quote it)")
    parser.add_argument("--pair", metavar="TEXT", help="a second sentence: the model reads [CLS] TEXT [SEP] PAIR [SEP]")
    parser.add_argument("--model", metavar="PATH",
                        help="a BERT checkpoint folder with vocab.txt (default: the embedded all-MiniLM-L6-v2); "
                             "chapter 4's and chapter 5's saved models work too")
    parser.add_argument("-o", "--output", metavar="FILE", default="attention.html",
                        help="the HTML page to write (default: attention.html)")
    parser.add_argument("--max-length", type=int, default=64,
                        help="cut the input to this many tokens (default 64; the page grows with its square)")


def run(args: argparse.Namespace) -> int:
    from bertedu.attention_view import attention_page
    from bertedu.checkpoint import default_checkpoint
    from bertedu.files import write_text
    from bertedu.model import BertModel
    from bertedu.tokenization import load_fast_tokenizer
    from bertedu.viz import run_with_attention

    if not args.text.strip():
        raise UserError('The text is empty: give a sentence, e.g. bertedu attention "Not bad at all!" -o view.html')
    if args.max_length < 3:
        raise UserError(f"--max-length must be at least 3 ([CLS], one token, [SEP]); got {args.max_length}.")
    folder = Path(args.model).expanduser() if args.model else default_checkpoint()
    try:
        model = BertModel.from_pretrained(folder)
        tokenizer = load_fast_tokenizer(folder)
    except FileNotFoundError as error:
        raise UserError(f"{error} Pass --model a checkpoint folder (config.json, weights, vocab.txt).") from None
    tokens, attentions = run_with_attention(model, tokenizer, args.text, args.pair, max_length=args.max_length)
    title = f"Attention of {folder.name}: {args.text}" + (f" | {args.pair}" if args.pair else "")
    output = write_text(Path(args.output), attention_page(tokens, attentions, title))
    n_layers, n_heads = len(attentions), attentions[0].shape[1]
    print(f"Wrote {output}: {len(tokens)} tokens, {n_layers} layers x {n_heads} heads. Open it in a browser (no internet needed).")
    return 0
