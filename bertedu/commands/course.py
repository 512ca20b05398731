"""``bertedu course``: run every chapter notebook headless, in order (see ``bertedu.course``)."""
from __future__ import annotations

import argparse
import sys

from bertedu.commands import add_mode_flags
from bertedu.course import ChapterFailed, run_chapters
from bertedu.errors import UserError
from bertedu.paths import build_dir
from bertedu.settings import set_mode


def configure(parser: argparse.ArgumentParser) -> None:
    add_mode_flags(parser)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only chapters whose file name contains NAME (e.g. 03)")
    parser.add_argument("--in-place", action="store_true", help="course authors: store the new outputs in notebooks/")
    parser.add_argument("--no-html", dest="html", action="store_false", help="skip the HTML pages")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run (default 1800)")


def run(args: argparse.Namespace) -> int:
    if args.in_place and args.quick is False:
        raise UserError("Stored outputs come from quick mode; run --in-place without --full.")
    if args.quick is not None or args.in_place:
        set_mode(args.quick is not False)  # the notebooks' kernels read the switch from the environment
    try:
        timings = run_chapters(args.only, in_place=args.in_place, html=args.html, timeout=args.timeout)
    except ChapterFailed as failure:
        print(f"\nThe course stopped: {failure}\nThe partly executed notebook is in {build_dir() / 'course'}.", file=sys.stderr)
        return 1
    total = sum(seconds for _, seconds in timings)
    print(f"All {len(timings)} chapters ran in {total / 60:.1f} min. Executed notebooks and HTML: {build_dir() / 'course'}")
    return 0
