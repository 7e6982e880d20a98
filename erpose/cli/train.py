"""``erpose train``: not implemented yet (issue #5)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "not implemented yet: see issue #5"


def run(args: argparse.Namespace) -> int:
    print("erpose train: not implemented yet (issue #5)", file=sys.stderr)
    return 2
