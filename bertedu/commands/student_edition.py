"""``bertedu student-edition OUT/``: the chapter notebooks without their solutions (see ``bertedu.student``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bertedu.course import chapter_notebooks
from bertedu.student import write_student_edition


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write the chapter notebooks with the solutions removed (cells tagged 'solution' dropped, "
        "'### BEGIN SOLUTION' ... '### END SOLUTION' blocks replaced by 'raise NotImplementedError') "
        "and the exercise stubs in place. Hand OUT/ to the class; it runs under nbval like the full edition."
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT", help="folder to write the student notebooks to")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only chapters whose file name contains NAME")


def run(args: argparse.Namespace) -> int:
    written = write_student_edition(chapter_notebooks(args.only), args.out_dir)
    for path in written:
        print(path)
    print(f"{len(written)} student notebooks in {args.out_dir}. The reference solutions are still in the "
          "package (bertedu/exercises); see docs/teaching.md.")
    return 0
