"""sigpipe: find handwritten signatures on scanned documents and tell genuine from forged."""

__version__ = "0.1.0"
