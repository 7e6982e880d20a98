"""``erpose synth``: not implemented yet (issue #3)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "not implemented yet: see issue #3"


def run(args: argparse.Namespace) -> int:
    print("erpose synth: not implemented yet (issue #3)", file=sys.stderr)
    return 2
