"""``erpose predict``: not implemented yet (issue #6)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "not implemented yet: see issue #6"


def run(args: argparse.Namespace) -> int:
    print("erpose predict: not implemented yet (issue #6)", file=sys.stderr)
    return 2
