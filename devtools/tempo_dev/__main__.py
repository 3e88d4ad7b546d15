"""``python -m tempo_dev``: the demo (what ``make demo`` runs) and the mail catcher on its own."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path


def _demo(args: argparse.Namespace) -> None:
    from tempo_dev.devstack import run_demo

    run_demo(Path(args.home).resolve(), port=args.port, smtp_port=args.smtp_port)


def _mailcatcher(args: argparse.Namespace) -> None:
    from tempo_dev.mailcatcher import serve

    serve(host=args.host, port=args.port, maildir=args.maildir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tempo_dev", description="Tempo's development harness.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run Airflow with Tempo and the example processes locally")
    demo.add_argument("--home", default=os.environ.get("AIRFLOW_HOME", ".airflow"))
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--smtp-port", type=int, default=1025)
    demo.set_defaults(func=_demo)

    catcher = commands.add_parser("mailcatcher", help="a local SMTP server that keeps every mail")
    catcher.add_argument("--host", default="127.0.0.1")
    catcher.add_argument("--port", type=int, default=1025)
    catcher.add_argument("--maildir", default=None, help="folder to write each message to as .eml")
    catcher.set_defaults(func=_mailcatcher)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
