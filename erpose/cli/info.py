"""``erpose info``: not implemented yet (issue #4)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "not implemented yet: see issue #4"


def run(args: argparse.Namespace) -> int:
    print("erpose info: not implemented yet (issue #4)", file=sys.stderr)
    return 2
