"""``sigpipe datasets ...``: corpus import and synthetic data."""

from __future__ import annotations

import click


@click.group()
def datasets() -> None:
    """Signature corpora and synthetic data tools."""
