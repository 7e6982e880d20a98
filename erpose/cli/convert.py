"""``erpose convert``: not implemented yet (issue #2)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "not implemented yet: see issue #2"


def run(args: argparse.Namespace) -> int:
    print("erpose convert: not implemented yet (issue #2)", file=sys.stderr)
    return 2
