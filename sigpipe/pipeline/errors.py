"""Errors of the batch pipeline. Each ``kind`` is written into a failed document's report (``error.kind``)."""

from __future__ import annotations

from sigpipe.errors import InputError, SigpipeError


class CorruptPdfError(InputError):
    """A PDF that no backend can open or render (truncated, damaged, or not a PDF at all)."""

    kind = "corrupt_pdf"


class EncryptedPdfError(InputError):
    """A password-protected PDF."""

    kind = "encrypted_pdf"


class EmptyDocumentError(InputError):
    """A document without a single page."""

    kind = "empty_document"


class NoSelectedPageError(InputError):
    """A document none of whose pages the run's page selection (``--pages``) picks."""

    kind = "no_selected_page"


class CorruptImageError(InputError):
    """An image file that cannot be decoded (truncated, damaged, or not an image)."""

    kind = "corrupt_image"


class UnsupportedFormatError(InputError):
    """A file whose format the pipeline does not read."""

    kind = "unsupported_format"


class TooManyPagesError(InputError):
    """A document with more pages to read than the limit (``IngestConfig.max_pages``): a PDF of a few kilobytes can
    hold tens of thousands of pages sharing one content stream, hours of a night's work, every night."""

    kind = "too_many_pages"


class ImageTooLargeError(InputError):
    """A page whose pixel count is over the decompression-bomb limit."""

    kind = "image_too_large"


class MissingDependencyError(SigpipeError):
    """A system tool the chosen option needs (e.g. poppler's ``pdftoppm`` for pdf2image) is not installed."""

    kind = "missing_dependency"


class UnreadableFileError(InputError):
    """A document that cannot be read from disk (permissions, vanished, I/O error)."""

    kind = "unreadable_file"


class FileChangedError(InputError):
    """A document whose contents changed while it was processed (still being written, or replaced): its verdict
    would be recorded under a sha256 it was not judged on."""

    kind = "file_changed"


class ClaimsError(InputError):
    """The claims CSV is malformed (wrong header, empty or conflicting identities)."""

    kind = "bad_claims"


class UnknownAccountError(InputError):
    """A document claimed by an account that the signatory table (``--signatories``) does not hold: there is nobody
    to verify its signatures against."""

    kind = "unknown_account"


class BadSignatoryCardError(InputError):
    """A document claimed by an account whose signature card the signatory table gets wrong (an empty identity, a
    mandate that is not one): who must sign for it is not known, so it is not verified. The other accounts' cheques
    are."""

    kind = "bad_signatory_card"


class NoClaimError(InputError):
    """A document the claims file does not claim, in a run with a signatory table: each document is verified
    against the account the claims name, never matched one-to-many."""

    kind = "no_claim"


class NoDocumentsError(InputError):
    """SCANS holds no document the pipeline reads."""

    kind = "no_documents"


class WorkerCrashError(SigpipeError):
    """A worker process died (segfault, killed for memory) while processing this document alone."""

    kind = "worker_crashed"


class DocumentTimeoutError(SigpipeError):
    """A document was still being processed after ``--timeout`` seconds; its worker was killed."""

    kind = "timeout"


class OutputBusyError(SigpipeError):
    """Another sigpipe run is writing to the same OUT folder."""

    kind = "output_busy"


class OutputWriteError(SigpipeError):
    """A report or the summary cannot be written to OUT (disk full, permissions, a vanished folder). The run stops:
    the reports already written are complete, and a re-run resumes from them."""

    kind = "output_write"


class TemporaryFolderError(SigpipeError):
    """The temporary folder (``$TMPDIR``) cannot take what the run must put there for its worker processes (full,
    read-only): the run stops before any document, as it does for an unwritable OUT."""

    kind = "temporary_folder"


# Every kind a document's report (``error.kind``) or ``summary.json``'s ``failures`` can carry, for a consumer to
# switch on: the report schema's enum and README's list are this one (tests tie the three and the code's kinds).
DOCUMENT_ERROR_KINDS = (
    "corrupt_pdf", "encrypted_pdf", "empty_document", "corrupt_image", "image_too_large", "unsupported_format",
    "file_too_large", "temporary_copy", "too_many_pages", "unreadable_file", "file_changed", "no_selected_page",
    "unknown_account", "bad_signatory_card", "no_claim", "worker_crashed", "timeout", "out_of_memory",
    "missing_dependency", "bad_input", "model", "internal",
    # in summary.json's failures only: documents without a report of their own
    "output_write", "unreadable_folder",
)
