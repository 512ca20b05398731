"""``bertedu predict``: classify texts with a fine-tuned model (see ``configure`` for the input rules)."""
from __future__ import annotations

import argparse
import codecs
import io
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from bertedu.errors import UserError, UserFileNotFoundError
from bertedu.finetuning import MODEL_NAME, TextError
from bertedu.paths import checkpoints_dir
from bertedu.sentiment import Prediction, SentimentClassifier


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Classify texts with a fine-tuned model. Texts come from the arguments, or from --file "
        "(one text per line; '-' reads standard input), or from standard input when neither is given. "
        "Lines end at newline characters only. Blank lines in a file are skipped, and so is a line without "
        "tokens (said on stderr); an empty argument is an error. Texts of any length are accepted: a long one "
        "is cut to its head and tail, as in training. A file is read and classified in chunks, and each "
        "chunk's results are printed before the next is read."
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
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar on stderr (it is shown only when stderr is a terminal)")


@dataclass
class InputText:
    """A text to classify and where it came from (for messages and JSON output)."""

    text: str
    source: str  # "argument 2", "line 7 of reviews.txt", "line 3 of stdin"
    line: int | None = None


# Texts are read and classified this many batches at a time, and each chunk's results are
# printed before the next is read: a large file streams, with memory bounded by one chunk.
CHUNK_BATCHES = 8


def argument_inputs(texts: Sequence[str]) -> list[InputText]:
    """The texts given as arguments; an empty one or one that is not UTF-8 is an error."""
    inputs = []
    for i, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")  # undecodable argument bytes arrive as lone surrogates
        except UnicodeEncodeError:
            raise UserError(f"Argument {i} is not valid UTF-8 text: pass it in a file with --file and "
                            f"--encoding, or convert it with iconv.") from None
        if not text.strip():
            raise UserError(f"Argument {i} is empty or only whitespace: there is nothing to classify.")
        inputs.append(InputText(text, f"argument {i}"))
    return inputs


class LineReader:
    """The lines of a binary stream as ``InputText``, decoded as they are read.

    Lines end at ``\\n`` only (and a ``\\r`` before it is dropped), so line numbers are
    those of an editor or ``sed -n 7p``: ``str.splitlines`` would also cut at ``\\x0c``,
    ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028`` and ``\\u2029``. Blank lines are skipped.
    ``position`` counts the bytes read so far (for the progress bar).
    """

    def __init__(self, stream: BinaryIO, name: str, encoding: str = "utf-8") -> None:
        try:
            self.decoder = codecs.getincrementaldecoder(encoding)()
        except LookupError:
            raise UserError(f"Unknown encoding {encoding!r}: use a Python codec name such as utf-8 "
                            f"or latin-1.") from None
        self.stream, self.name, self.encoding = stream, name, encoding
        self.position = 0

    def __iter__(self) -> Iterator[InputText]:
        pending, number, raw_lines = "", 0, 0
        while True:
            raw = self._read_line()
            raw_lines += 1
            pending += self._decode(raw, raw_lines)
            self.position += len(raw)
            *complete, pending = pending.split("\n")
            if not raw:
                complete.append(pending)  # the last line, without a final newline
            for line in complete:
                number += 1
                line = line.removesuffix("\r")
                if line.strip():
                    yield InputText(line, f"line {number} of {self.name}", number)
            if not raw:
                return

    def _read_line(self) -> bytes:
        try:
            return self.stream.readline()  # a binary readline stops at b"\n" only
        except OSError as error:  # e.g. a descriptor that was closed, or a folder
            raise UserError(f"Cannot read {self.name}: {error.strerror or error}.") from None

    def _decode(self, raw: bytes, raw_lines: int) -> str:
        try:
            return self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as error:
            offset = self.position + error.start - (len(error.object) - len(raw))
            raise UserError(
                f"{self.name} is not valid {self.encoding} text: byte 0x{error.object[error.start]:02x} at offset "
                f"{offset} (line {raw_lines}). Convert it first (e.g. `iconv -f latin1 -t utf-8 {self.name}`) or "
                f"name its encoding with --encoding latin-1."
            ) from None


def open_lines(file: str | None, has_arguments: bool, encoding: str = "utf-8",
               stdin: Any = None) -> tuple[LineReader, int | None] | None:
    """The line reader for ``--file`` (or stdin) and its size in bytes when known; None for
    arguments only. Errors about the file come now, before the model is loaded."""
    stdin = stdin if stdin is not None else sys.stdin
    if file is None and has_arguments:
        return None
    if file is None or file == "-":
        if stdin is None:  # started with standard input closed (`bertedu predict <&-`)
            raise UserError("Standard input is closed, so there is no text to read: give texts as arguments "
                            "or --file FILE.")
        if file is None and getattr(stdin, "isatty", lambda: False)():
            raise UserError("No text to classify: give texts as arguments, --file FILE, or pipe them into "
                            "standard input (one per line).")
        stream = stdin.buffer if hasattr(stdin, "buffer") else io.BytesIO(stdin.read().encode("utf-8"))
        return LineReader(stream, "stdin", encoding), None
    path = Path(file).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a directory: --file takes a text file with one text per line.")
    if not path.exists():
        raise UserFileNotFoundError(f"No file {path}: give a text file with one text per line.")
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed by run)
    except OSError as error:
        raise UserError(f"Cannot read {path}: {error.strerror or error}.") from None
    return LineReader(stream, str(path), encoding), path.stat().st_size


def read_inputs(texts: Sequence[str], file: str | None, encoding: str = "utf-8",
                stdin: Any = None) -> list[InputText]:
    """All the texts to classify, from arguments, a file or stdin (see ``configure``), as a list."""
    inputs = argument_inputs(texts)
    opened = open_lines(file, bool(texts), encoding, stdin)
    if opened is not None:
        inputs += list(opened[0])
    if not inputs:
        raise UserError("No text to classify: the input holds only blank lines.")
    return inputs


def chunks(items: Iterable[InputText], size: int) -> Iterator[list[InputText]]:
    chunk: list[InputText] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


LINE_SEPARATOR_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


def print_prediction(item: InputText, prediction: Prediction, as_json: bool) -> None:
    if as_json:
        record = {"text": item.text, **asdict(prediction)}
        if item.line is not None:
            record["line"] = item.line
        # Escape the line separators that JSON allows raw: readers that split with str.splitlines
        # (or JavaScript before ES2019) would cut the record there.
        line = json.dumps(record, ensure_ascii=False)
        print(line.translate(LINE_SEPARATOR_ESCAPES))
    else:
        preview = " ".join(item.text.split())
        preview = preview if len(preview) <= 70 else preview[:67] + "..."
        print(f"{prediction.label}\t{prediction.probability:.3f}\t{preview}")


def run(args: argparse.Namespace) -> int:
    folder = args.model or checkpoints_dir(MODEL_NAME)
    if args.model is None and not folder.is_dir():
        raise UserFileNotFoundError(f"No fine-tuned model at {folder}. Train one with `bertedu finetune` "
                                    f"(quick mode: a few minutes on a CPU), or pass --model DIR.")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1; got {args.batch_size}.")
    arguments = argument_inputs(args.texts)
    opened = open_lines(args.file, bool(args.texts), args.encoding)
    reader, size = opened if opened is not None else (None, None)
    try:
        classifier = SentimentClassifier.from_pretrained(folder)
        show = not args.no_progress and reader is not None and sys.stderr.isatty()
        with tqdm(total=size, unit="B", unit_scale=True, desc="predict", disable=not show, file=sys.stderr) as bar:
            printed, skipped = classify_stream(classifier, arguments, reader, args, bar)
    finally:
        if reader is not None and reader.stream is not getattr(sys.stdin, "buffer", None):
            reader.stream.close()
    if not printed:
        raise UserError("No text to classify: " + (f"none of the {skipped} non-blank line(s) has a token."
                                                   if skipped else "the input holds only blank lines."))
    if skipped:
        print(f"{skipped} line(s) without tokens skipped (see above).", file=sys.stderr)
    return 0


def classify_stream(classifier: SentimentClassifier, arguments: list[InputText], reader: LineReader | None,
                    args: argparse.Namespace, bar: tqdm) -> tuple[int, int]:
    """Classify chunk by chunk, printing each chunk's results before reading on: (printed, skipped)."""
    printed = skipped = 0
    items = itertools.chain(arguments, reader if reader is not None else ())
    for chunk in chunks(items, CHUNK_BATCHES * args.batch_size):
        try:
            predictions = classifier.predict([item.text for item in chunk], batch_size=args.batch_size,
                                             skip_empty=True)
        except TextError as error:  # e.g. lone surrogates: name the text by where it came from
            raise UserError(f"{chunk[error.index].source.capitalize()} {error.problem}") from None
        for item, prediction in zip(chunk, predictions):
            if prediction is None:
                message = f"{item.source.capitalize()} has no tokens after cleaning ({item.text[:40]!r})"
                if item.line is None:  # an argument: the user named this text, so it is an error
                    raise UserError(f"{message}: there is nothing to classify.")
                bar.write(f"bertedu predict: {message}: skipped.", file=sys.stderr)
                skipped += 1
            else:
                print_prediction(item, prediction, args.json)
                printed += 1
        sys.stdout.flush()
        if reader is not None:
            bar.update(reader.position - bar.n)
    return printed, skipped
