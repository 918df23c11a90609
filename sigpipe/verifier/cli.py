"""``sigpipe verifier train|eval`` and ``sigpipe verify``."""

from __future__ import annotations

import click


@click.group()
def verifier() -> None:
    """Train and evaluate the signature verifier."""


@click.command()
def verify() -> None:
    """Verify one questioned signature image against reference specimens."""
