"""`layers-mock conform` (placeholder until the conformance runner lands)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("conform", help="check a deployment against the contract")


def run(args: argparse.Namespace) -> int:
    print("layers-mock conform: not implemented yet")
    return 2
