"""Signature corpora, detection datasets, synthetic signatures and synthetic documents."""

from sigpipe.datasets.corpus import Corpus, WriterSamples, read_gray, split_writers

__all__ = ["Corpus", "WriterSamples", "read_gray", "split_writers"]
