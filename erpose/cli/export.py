"""``erpose export``: not implemented yet (issue #7)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "not implemented yet: see issue #7"


def run(args: argparse.Namespace) -> int:
    print("erpose export: not implemented yet (issue #7)", file=sys.stderr)
    return 2
