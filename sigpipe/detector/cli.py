"""``sigpipe detector train|eval|export``."""

from __future__ import annotations

import click


@click.group()
def detector() -> None:
    """Train, evaluate and export the YOLOv8 signature detector."""
