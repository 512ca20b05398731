"""``bertedu doctor``: what is installed, which device, where data and checkpoints are."""
from __future__ import annotations

import argparse

from bertedu.doctor import all_checks


def configure(parser: argparse.ArgumentParser) -> None:
    """No arguments."""


def run(args: argparse.Namespace) -> int:
    checks = all_checks()
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = "ok " if check.ok else ("MISSING" if check.essential else "-- ")
        print(f"{mark:7s} {check.name:{width}s}  {check.detail}")
        if not check.ok and check.fix:
            print(f"{'':7s} {'':{width}s}  -> {check.fix}")
    missing = [c.name for c in checks if c.essential and not c.ok]
    print("\nReady for the course." if not missing else f"\nNot ready: fix {', '.join(missing)} (see the arrows above).")
    return 1 if missing else 0
