"""``bertedu predict``: classify texts with a fine-tuned model (see ``configure`` for the input rules)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bertedu.errors import UserError, UserFileNotFoundError
from bertedu.finetuning import MODEL_NAME, TextError
from bertedu.paths import checkpoints_dir
from bertedu.sentiment import SentimentClassifier


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Classify texts with a fine-tuned model. Texts come from the arguments, or from --file "
        "(one text per line; '-' reads standard input), or from standard input when neither is given. "
        "Blank lines in a file are skipped; an empty argument is an error. Texts of any length are "
        "accepted: a long one is cut to its head and tail, as in training."
    )
    parser.epilog = (
        "output: one line per text, 'label<TAB>probability<TAB>text preview'; with --json one object per "
        "line with text, label, probability (of that label), probabilities (per label), n_tokens (word "
        "pieces before truncation), truncated, and line (for file input). Errors: one line on stderr, exit code 2."
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    parser.add_argument("--file", "-f", default=None, help="a UTF-8 text file with one text per line, or '-' for stdin")
    parser.add_argument("--model", "-m", type=Path, default=None,
                        help=f"a fine-tuned model folder (default: data/checkpoints/{MODEL_NAME}, "
                             f"written by `bertedu finetune`)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per text (JSON lines)")
    parser.add_argument("--encoding", default="utf-8", help="the encoding of --file / stdin (default: utf-8)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")


@dataclass
class InputText:
    """A text to classify and where it came from (for messages and JSON output)."""

    text: str
    source: str  # "argument 2", "line 7 of reviews.txt", "line 3 of stdin"
    line: int | None = None


def decode_input(data: bytes, name: str, encoding: str = "utf-8") -> str:
    """Bytes -> text, with an error that says where the bad byte is and what to do."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UserError(
            f"{name} is not valid {encoding} text: byte 0x{data[error.start]:02x} at offset {error.start} "
            f"(line {line}). Convert it first (e.g. `iconv -f latin1 -t utf-8 {name}`) or name its "
            f"encoding with --encoding latin-1."
        ) from None
    except LookupError:
        raise UserError(f"Unknown encoding {encoding!r}: use a Python codec name such as utf-8 or latin-1.") from None


def read_inputs(texts: Sequence[str], file: str | None, encoding: str = "utf-8",
                stdin: Any = None) -> list[InputText]:
    """Collect the texts to classify from arguments, a file or stdin (see ``configure_predict``)."""
    stdin = stdin if stdin is not None else sys.stdin
    inputs: list[InputText] = []
    for i, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")  # undecodable argument bytes arrive as lone surrogates
        except UnicodeEncodeError:
            raise UserError(f"Argument {i} is not valid UTF-8 text: pass it in a file with --file and "
                             f"--encoding, or convert it with iconv.") from None
        if not text.strip():
            raise UserError(f"Argument {i} is empty or only whitespace: there is nothing to classify.")
        inputs.append(InputText(text, f"argument {i}"))
    if file is None and not texts:
        if getattr(stdin, "isatty", lambda: False)():
            raise UserError("No text to classify: give texts as arguments, --file FILE, or pipe them into "
                             "standard input (one per line).")
        file = "-"
    if file is not None:
        if file == "-":
            name, data = "stdin", stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
        else:
            path = Path(file).expanduser()
            if not path.is_file():
                raise UserFileNotFoundError(f"No file {path}: give a text file with one text per line.")
            name, data = str(path), path.read_bytes()
        for number, line in enumerate(decode_input(data, name, encoding).splitlines(), start=1):
            if line.strip():
                inputs.append(InputText(line, f"line {number} of {name}", number))
    if not inputs:
        raise UserError("No text to classify: the input holds only blank lines.")
    return inputs


def run(args: argparse.Namespace) -> int:
    folder = args.model or checkpoints_dir(MODEL_NAME)
    if args.model is None and not folder.is_dir():
        raise UserFileNotFoundError(f"No fine-tuned model at {folder}. Train one with `bertedu finetune` "
                                f"(quick mode: a few minutes on a CPU), or pass --model DIR.")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1; got {args.batch_size}.")
    inputs = read_inputs(args.texts, args.file, args.encoding)
    classifier = SentimentClassifier.from_pretrained(folder)
    try:
        predictions = classifier.predict([item.text for item in inputs], batch_size=args.batch_size)
    except TextError as error:  # e.g. a text with no tokens: name it by where it came from
        raise UserError(f"{inputs[error.index].source.capitalize()} {error.problem}") from None
    for item, prediction in zip(inputs, predictions):
        if args.json:
            record = {"text": item.text, **asdict(prediction)}
            if item.line is not None:
                record["line"] = item.line
            print(json.dumps(record, ensure_ascii=False))
        else:
            preview = " ".join(item.text.split())
            preview = preview if len(preview) <= 70 else preview[:67] + "..."
            print(f"{prediction.label}\t{prediction.probability:.3f}\t{preview}")
    return 0

