"""Entry point of the ``erpose`` command: dispatches ``erpose <verb>`` to ``erpose.cli.<verb>``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from erpose import __version__

#: verb -> one-line help. Each verb lives in ``erpose.cli.<verb>`` with ``add_arguments(parser)``
#: and ``run(args) -> int``; imported only when chosen, so ``erpose --help`` stays fast.
VERBS = {
    "train": "train a model (ER-Pose or the YOLO-Pose baseline)",
    "val": "evaluate a model or a COCO results file (COCO / CrowdPose AP)",
    "predict": "draw and save poses on images, folders, videos or streams",
    "track": "predict poses on a video, frame folder or camera and give each person a track id",
    "export": "export a model to ONNX or OpenVINO (float32 or INT8)",
    "synth": "generate a SynthCrowd synthetic crowded-people dataset",
    "convert": "convert datasets between COCO keypoint JSON and YOLO-pose",
    "info": "print a model summary (layers, parameters, GFLOPs)",
    "serve": "serve a model over HTTP, with a demo page (the [serve] extra)",
}


class CLIError(Exception):
    """An error the CLI reports as one line (no traceback) with exit status 2."""


def error_line(exc: BaseException) -> str:
    """One line for an error: an ``OSError`` as ``path: reason``, anything else as its message."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        # A failed rename (the last step of every atomic write) is about its target, the user's path.
        path = exc.filename2 if exc.filename2 is not None else exc.filename
        reason = exc.strerror
        if isinstance(exc, FileExistsError) and os.path.isfile(path):
            reason = "is a file, so no folder can be made there"
        return f"{path}: {reason}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erpose",
        description="ER-Pose: keypoint-driven, box-free, NMS-free real-time multi-person pose estimation.",
    )
    parser.add_argument("--version", action="version", version=f"erpose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", metavar="<command>")
    for verb, help_text in VERBS.items():
        module = importlib.import_module(f"erpose.cli.{verb}")
        verb_parser = sub.add_parser(verb, help=help_text, description=help_text)
        module.add_arguments(verb_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    if args.verb is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"erpose.cli.{args.verb}")
    try:
        return int(module.run(args) or 0)
    except CLIError as exc:
        print(f"erpose {args.verb}: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        # Library errors name the file and the problem; the user needs that line, not a traceback.
        # OSError covers every file-system refusal (a directory where a file goes, no permission,
        # a read-only file system, a path under a file, a full disk): all name the path.
        if args.verbose:
            raise
        print(f"erpose {args.verb}: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"erpose {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
