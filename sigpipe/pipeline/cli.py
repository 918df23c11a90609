"""``sigpipe run``: the batch job."""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Find and verify the signatures in every document under SCANS."""
