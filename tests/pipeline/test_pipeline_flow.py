import dataclasses
import logging
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from PIL import Image
from pipeline_doubles import SIG_A, SIG_B, InkBlobDetector, page_with, save_image, save_pdf, scribble

from sigpipe.pipeline.flow import FlowConfig, SignaturePredictor, crop_box, reading_order, specimen_loader
from sigpipe.pipeline.ingest import IngestConfig
from sigpipe.pipeline.report import load_schema
from sigpipe.verifier.gallery import Gallery, ink_marks, is_negative, looks_like_page
from sigpipe.verifier.verifier import Verifier


def test_crop_box_adds_margin_and_clips():
    page = np.arange(100 * 200, dtype=np.int64).reshape(100, 200)
    c = crop_box(page, (50, 20, 150, 70), margin=0.1)  # box 100x50 -> margins 10 and 5
    assert c.shape == (60, 120) and c[0, 0] == page[15, 40]
    assert crop_box(page, (0, 0, 200, 100), margin=0.5).shape == (100, 200)
    assert crop_box(page, (190.2, 95.7, 199.9, 99.9), margin=0).shape == (5, 10)
    assert crop_box(page, (199.5, 99.5, 199.6, 99.6), margin=0).shape == (1, 1)


@pytest.fixture
def doc_a(tmp_path: Path) -> Path:
    """Two pages: the first blank, alice's signature on the second."""
    return save_pdf(tmp_path / "a.pdf", [page_with([]), page_with([(scribble(SIG_A), 300, 400)])])


def ink_box(sig: np.ndarray, x: int, y: int, scale: float) -> tuple[float, float, float, float]:
    """Where a signature pasted at (x, y) has ink, in pixels of the page rendered at ``scale``."""
    ys, xs = np.nonzero(sig < 128)
    return ((x + xs.min()) * scale, (y + ys.min()) * scale, (x + xs.max() + 1) * scale, (y + ys.max() + 1) * scale)


def predictor(verifier: Verifier, embeddings: dict[str, np.ndarray], detector: InkBlobDetector | None = None,
              **cfg: float) -> SignaturePredictor:
    return SignaturePredictor(detector or InkBlobDetector(), verifier, Gallery(verifier, embeddings),
                              FlowConfig(**cfg))  # type: ignore[arg-type]


def test_claims_and_one_to_many_verdicts(verifier: Verifier, doc_a: Path):
    emb_a = verifier.embed([scribble(SIG_A)])  # alice's specimen is the very signature on the page
    far = -emb_a  # a person whose references are as far as can be (distance 2)
    cases = [
        ({"alice": emb_a, "mallory": far}, "alice", "genuine", "alice", "genuine"),
        ({"alice": emb_a, "mallory": far}, "mallory", "forged", "mallory", "forged"),
        ({"alice": emb_a, "mallory": far}, "carol", "no_reference", "carol", "needs_review"),
        ({"alice": emb_a, "mallory": far}, None, "genuine", "alice", "genuine"),  # best match
        ({"mallory": far}, None, "unknown_signer", "mallory", "needs_review"),  # nearest, beyond threshold
        ({}, None, "no_reference", None, "needs_review"),  # empty gallery
        # documents claimed by several people: the signature is judged against the claimant it matches best
        ({"alice": emb_a, "mallory": far}, ("mallory", "alice"), "genuine", "alice", "needs_review"),  # no mallory
        # nobody's; a tie goes to the first name in alphabetical order, whatever the order of the claims file
        ({"mallory": far, "trent": far}, ("trent", "mallory"), "forged", "mallory", "forged"),
        ({"mallory": far, "trent": far}, ("mallory", "trent"), "forged", "mallory", "forged"),
        ({"alice": emb_a, "mallory": far}, ("mallory", "carol"), "no_reference", None, "needs_review"),  # carol's?
        ({"alice": emb_a}, ("carol", "dave"), "no_reference", None, "needs_review"),
    ]
    for embeddings, claimed, sig_verdict, identity, doc_verdict in cases:
        report = predictor(verifier, embeddings)(doc_a, relative="a.pdf", claimed=claimed)
        jsonschema.validate(report.to_dict(), load_schema())
        assert report.status == "ok" and report.document.pages == 2 and report.claimed_identity == claimed
        (s,) = report.signatures
        assert (s.verdict, s.identity, report.verdict) == (sig_verdict, identity, doc_verdict), (claimed, embeddings)
        assert s.page == 2 and s.page_size == (1600, 1200) and s.dpi == 200
        assert np.allclose(s.bbox, ink_box(scribble(SIG_A), 300, 400, scale=2.0), atol=6)  # at 200 dpi
        if sig_verdict == "no_reference":
            assert s.distance is s.threshold is s.score is None
        else:
            assert s.threshold == 0.5 and 0.0 <= s.score <= 1.0
            assert (s.distance < 0.1) == (identity == "alice")


def test_signatures_of_several_pages_are_embedded_in_one_batch(verifier: Verifier, tmp_path: Path):
    a, b = scribble(SIG_A), scribble(SIG_B)
    pages = [page_with([(a, 50, 50), (b, 400, 400)]), page_with([]), page_with([(b, 200, 300)])]
    pdf = save_pdf(tmp_path / "three.pdf", pages)
    det = InkBlobDetector()
    p = predictor(verifier, {"alice": verifier.embed([a]), "bob": verifier.embed([b])}, det, page_batch=2)
    calls = []
    embed = verifier.embed_prepared
    p.verifier = type("Spy", (), {"prepare": verifier.prepare, "prepare_marked": verifier.prepare_marked,
                                  "decide": verifier.decide, "ident": verifier.ident, "copy_of": verifier.copy_of,
                                  "embed_prepared": lambda self, x, batch: calls.append(len(x)) or embed(x, batch)})()
    report = p(pdf, relative="three.pdf", ingest=IngestConfig(dpi=72))
    assert [(s.page, s.identity) for s in report.signatures] == [(1, "alice"), (1, "bob"), (3, "bob")]
    assert report.verdict == "genuine" and report.document.pages == 3
    assert det.calls == [2, 1] and calls == [3]


def test_a_page_s_signatures_are_listed_in_reading_order(verifier: Verifier, tmp_path: Path):
    """Detectors list boxes by confidence; a report lists them as a person reads the page (top to bottom, then left
    to right), as `sigpipe verify --signature N` and the review sheets number them."""
    a, b = scribble(SIG_A), scribble(SIG_B)
    doc = save_image(tmp_path / "two.png", page_with([(a, 400, 50), (b, 50, 300), (a, 50, 50)]))

    class ByConfidence(InkBlobDetector):
        def detect_batch(self, pages):  # type: ignore[no-untyped-def]
            return [sorted(boxes, key=lambda b: -b.bbox[1] - b.bbox[0]) for boxes in super().detect_batch(pages)]

    report = predictor(verifier, {"alice": verifier.embed([a])}, ByConfidence())(doc)
    assert [(s.bbox[1], s.bbox[0]) for s in report.signatures] == sorted((s.bbox[1], s.bbox[0])
                                                                         for s in report.signatures)
    assert [(s.bbox[0] < 300, s.bbox[1] < 200) for s in report.signatures] == [(True, True), (False, True),
                                                                               (True, False)]


@dataclasses.dataclass(frozen=True)
class Box:
    bbox: tuple[float, float, float, float]
    confidence: float = 0.9


def test_signatures_side_by_side_are_read_left_to_right_whatever_their_top_edges():
    """Half a pixel of detector jitter (another file format, another precision) must not renumber signatures."""
    for dy in (-0.5, 0.0, 0.46, 30.0):  # the right one's top edge a hair above, level, a hair below, well below
        left, right = Box((100, 900, 500, 1050)), Box((700, 900 + dy, 1100, 1050 + dy))
        assert reading_order([right, left]) == [left, right]
        assert reading_order([left, right]) == [left, right]
    # one above the other, even touching and overlapping a little, and a third beside the lower one
    top, below, beside = Box((100, 100, 500, 250)), Box((120, 240, 480, 400)), Box((600, 260, 900, 380))
    assert reading_order([beside, below, top]) == [top, below, beside]
    # a line of three with uneven heights, under a heading box
    head = Box((50, 10, 1200, 60))
    line = [Box((900, 500, 1100, 560)), Box((100, 480, 400, 600)), Box((500, 505, 800, 590))]
    assert reading_order([*line, head]) == [head, line[1], line[2], line[0]]
    assert reading_order([]) == []


def test_a_bad_document_gives_an_error_report_not_an_exception(verifier: Verifier, tmp_path: Path):
    (tmp_path / "bad.pdf").write_text("text")
    r = predictor(verifier, {})(tmp_path / "bad.pdf", relative="x/bad.pdf", claimed="alice")
    assert (r.status, r.verdict, r.error.kind, r.document.path) == ("error", "error", "corrupt_pdf", "x/bad.pdf")
    assert r.document.sha256 and r.signatures == ()
    jsonschema.validate(r.to_dict(), load_schema())

    class Boom(InkBlobDetector):
        def detect_batch(self, pages):  # type: ignore[no-untyped-def]
            raise RuntimeError("detector exploded")

    ok = save_image(tmp_path / "ok.png", page_with([]))
    r = predictor(verifier, {}, Boom())(ok)
    assert r.error.kind == "internal" and "exploded" in r.error.message and r.document.pages == 1
    r = predictor(verifier, {})(tmp_path / "vanished.png")
    assert r.error.kind == "unreadable_file" and r.document.sha256 is None


def test_a_library_s_warning_about_a_file_is_logged_with_its_name(verifier: Verifier, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture):
    """A truncated TIFF made PIL print ``UserWarning: Corrupt EXIF data`` on stderr, naming no file and shown even
    with ``-qq``; and the document's failure was logged as a warning, hidden by ``-qq`` though it fails the run."""
    import logging
    import warnings

    from sigpipe.pipeline import flow
    from sigpipe.pipeline.errors import CorruptImageError

    def pages(path: Path, config: IngestConfig):  # type: ignore[no-untyped-def]
        warnings.warn("Corrupt EXIF data.  Expecting to read 12 bytes but only got 2.", UserWarning, stacklevel=1)
        warnings.warn("Corrupt EXIF data.  Expecting to read 12 bytes but only got 2.", UserWarning, stacklevel=1)
        warnings.warn("np.foo is deprecated", DeprecationWarning, stacklevel=1)  # about the code: debug only
        raise CorruptImageError("page 1 cannot be decoded (truncated or damaged)")
        yield  # pragma: no cover

    monkeypatch.setattr(flow, "iter_pages", pages)
    ok = save_image(tmp_path / "scan.tif", page_with([]))
    with caplog.at_level(logging.WARNING, logger="sigpipe"), warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        r = predictor(verifier, {})(ok, relative="in/scan.tif")
    assert r.error.kind == "corrupt_image" and not shown  # nothing went to stderr past the log
    said = [(rec.levelname, rec.getMessage()) for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert said == [("WARNING", "in/scan.tif: UserWarning: Corrupt EXIF data.  Expecting to read 12 bytes but only "
                                "got 2."),
                    ("ERROR", "in/scan.tif: page 1 cannot be decoded (truncated or damaged) (corrupt_image)")]


def test_threads_sharing_a_predictor_keep_their_warnings_apart_and_leave_the_process_s_alone(
        verifier: Verifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """Each call swapped the process's warning filters and handler in and out (``catch_warnings``): threads sharing
    a predictor in a service left one call's list as the handler for the life of the process, so the service's own
    warnings vanished into it, and left an ``ignore`` filter behind. Now each thread's document keeps its own."""
    import logging
    import threading
    import time
    import warnings

    from sigpipe.pipeline import flow
    from sigpipe.pipeline.errors import CorruptImageError

    def pages(path: Path, config: IngestConfig):  # type: ignore[no-untyped-def]
        time.sleep(0.002 * (hash(str(path)) % 5))  # the calls of the threads overlap
        warnings.warn(f"about {Path(path).stem}", UserWarning, stacklevel=1)
        time.sleep(0.002 * (hash(str(path)) % 3))
        raise CorruptImageError("damaged")
        yield  # pragma: no cover

    monkeypatch.setattr(flow, "iter_pages", pages)
    p = predictor(verifier, {})
    files = [save_image(tmp_path / f"doc{i}.png", np.full((20, 20, 3), 255, np.uint8)) for i in range(8)]
    filters, handler = list(warnings.filters), warnings.showwarning
    go = threading.Barrier(4)

    def work(n: int) -> None:
        go.wait()
        for _ in range(5):
            for f in files[n::4] + files[(n + 1) % 4::4]:
                p(f)

    with caplog.at_level(logging.WARNING, logger="sigpipe"), warnings.catch_warnings():
        warnings.simplefilter("always")  # as `sigpipe run` sets: every call's warning is shown
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lines = [r.getMessage() for r in caplog.records if "UserWarning" in r.getMessage()]
    assert len(lines) == 4 * 5 * 4  # every call's warning, each under its own document's name
    assert all(line.split(":")[0] == f"doc{line.rsplit(' ', 1)[1][3:]}.png" for line in lines)
    assert warnings.filters == filters and warnings.showwarning in (handler, _warnings_show())
    with warnings.catch_warnings(record=True) as shown:  # the process's own warnings are shown as before
        warnings.simplefilter("always")
        warnings.warn("the service's own", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["the service's own"]


def test_a_predictor_keeps_nothing_per_claim(verifier: Verifier):
    """A service's predictor sees a claim per call for weeks: each claim's references fingerprint was kept for
    good (200,000 distinct claims: 70 MB). Only one-to-many's, which hashes everybody, is kept."""
    from sigpipe.pipeline.claims import normalise_claim

    rng = np.random.default_rng(0)
    p = predictor(verifier, {"ann": rng.normal(size=(2, 8)), "bob": rng.normal(size=(1, 8))})
    sizes = lambda: {k: len(v) for k, v in vars(p).items() if isinstance(v, dict | list | set)}  # noqa: E731
    before = sizes()
    for i in range(300):
        assert p.references(normalise_claim(f"nobody-{i}")).people == 0
    assert sizes() == before
    assert p.references(normalise_claim("ann")).specimens == 2 and p.references(None).specimens == 3


def _warnings_show():  # type: ignore[no-untyped-def]
    from sigpipe import _warnings

    return _warnings._show


def test_predictor_validates_its_parts(verifier: Verifier, verifier_manifest: Path, tmp_path: Path):
    with pytest.raises(TypeError, match="detect_batch"):
        SignaturePredictor(object(), verifier, Gallery(verifier))  # type: ignore[arg-type]
    other = Verifier.from_manifest(verifier_manifest)
    other.manifest = dataclasses.replace(other.manifest, tag="other")
    with pytest.raises(ValueError, match="enroll them again"):
        SignaturePredictor(InkBlobDetector(), other, Gallery(verifier))
    with pytest.raises(ValueError):
        FlowConfig(crop_margin=-0.1)
    assert predictor(verifier, {}).models == {"detector": InkBlobDetector.ident, "verifier": verifier.ident}


def test_specimen_loader_crops_the_best_detection_per_page(tmp_path: Path):
    a = scribble(SIG_A)
    pdf = save_pdf(tmp_path / "spec.pdf", [page_with([(a, 100, 100)]), page_with([])])
    crops = specimen_loader(InkBlobDetector(), IngestConfig(dpi=72), margin=0.0)(pdf)
    x1, y1, x2, y2 = ink_box(a, 100, 100, scale=0.72)  # 100 dpi pages read at 72 dpi
    assert len(crops) == 1 and crops[0].shape[:2] == pytest.approx((y2 - y1, x2 - x1), abs=4)


def test_a_specimen_page_with_two_signatures_is_refused_not_guessed(verifier: Verifier, tmp_path: Path):
    # an account-opening form signed by the customer and an officer: the most confident box, the officer's, was
    # enrolled as the customer's only specimen (a specimen audit)
    refs = tmp_path / "refs"
    save_pdf(refs / "alice" / "form.pdf", [page_with([(scribble(SIG_A), 100, 100), (scribble(SIG_B), 400, 400)])])
    save_pdf(refs / "alice" / "card.pdf", [page_with([(scribble(SIG_A), 100, 100)])])
    g = Gallery.enroll(refs, verifier, loader=specimen_loader(InkBlobDetector(), IngestConfig(dpi=72)),
                       cache=tmp_path / "cache")
    assert g.embeddings["alice"].shape[0] == 1  # the card's
    (why,) = [v for k, v in g.errors.items() if k.endswith("form.pdf")]
    assert "page 1 holds more than one signature" in why and "crop each of their specimens" in why


def test_page_specimens_are_cropped_again_when_the_loader_changes(verifier: Verifier, tmp_path: Path):
    a = scribble(SIG_A)
    refs, cache = tmp_path / "refs", tmp_path / "cache"
    save_pdf(refs / "alice" / "page.pdf", [page_with([(a, 100, 100)])])

    def enroll(margin: float) -> tuple[Gallery, InkBlobDetector]:
        det = InkBlobDetector()
        g = Gallery.enroll(refs, verifier, loader=specimen_loader(det, IngestConfig(dpi=72), margin), cache=cache)
        return g, det

    first, det = enroll(0.0)
    assert det.calls == [1] and first.embeddings["alice"].shape[0] == 1
    again, det = enroll(0.0)
    assert det.calls == [] and np.array_equal(again.embeddings["alice"], first.embeddings["alice"])  # cached
    wider, det = enroll(0.3)  # another crop of the same file: not the cached one
    assert det.calls == [1] and not np.array_equal(wider.embeddings["alice"], first.embeddings["alice"])
    assert specimen_loader(det, IngestConfig(dpi=72), 0.3).ident != specimen_loader(det, IngestConfig(dpi=72)).ident
    # a release that reads pages otherwise (levelling pages askew, reader revision 4) cuts its page specimens again
    from sigpipe.pipeline import flow

    before = specimen_loader(det).ident
    old_revision = flow.READER_REVISION
    try:
        flow.READER_REVISION = old_revision - 1
        assert specimen_loader(det).ident != before
    finally:
        flow.READER_REVISION = old_revision


def cheque_image(seed: int = 0) -> np.ndarray:
    """A 550x1200 cheque-like scan: lines of printed text and a signature."""
    img = np.full((550, 1200), 245, np.uint8)
    for y in (60, 110, 160, 300):
        cv2.putText(img, "PAY TO THE ORDER OF 0123456789", (40, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 30, 2)
    sig = scribble(SIG_A + seed)
    img[380:470, 800:1040] = np.minimum(img[380:470, 800:1040], sig)
    return img


def test_cheque_images_are_pages_and_signature_images_are_not():
    assert looks_like_page(cheque_image())
    assert looks_like_page(np.full((1400, 1000), 250, np.uint8))  # page-sized: a page whatever it holds
    assert not looks_like_page(scribble(SIG_A))  # a signature crop
    big = cv2.resize(scribble(SIG_A), (1200, 450))  # a large, clean signature scan: few ink marks
    assert not looks_like_page(big)
    rng = np.random.default_rng(0)  # a faint, noisy specimen: many speck marks, but signature-sized
    noisy = scribble(SIG_A, 480, 610)
    for y, x in rng.integers(0, (470, 600), (300, 2)):
        noisy[y:y + 4, x:x + 4] = 120
    assert ink_marks(noisy) >= 60 and not looks_like_page(noisy)


def test_a_fine_scan_of_a_signature_is_no_page_and_a_negative_is_refused(verifier: Verifier, tmp_path: Path):
    # a specimen audit: a signature scanned at 600 dpi (2931x852) was taken for a page, and the detector boxed one
    # word of it; a white-on-black export made every genuine cheque forged, check-refs silent
    fine = cv2.resize(scribble(SIG_A), (2400, 900))
    assert looks_like_page(fine) and not looks_like_page(fine, 600.0) and looks_like_page(fine, 150.0)
    page = np.full((3508, 2480), 250, np.uint8)  # an A4 page at 300 dpi stays a page
    assert looks_like_page(page, 300.0)
    refs = tmp_path / "refs"
    (refs / "alice").mkdir(parents=True)
    Image.fromarray(fine).save(refs / "alice" / "fine.png", dpi=(600, 600))
    save_image(refs / "alice" / "negative.png", 255 - scribble(SIG_A))
    save_image(refs / "alice" / "clean.png", scribble(SIG_A))
    save_image(refs / "alice" / "large.png", cv2.resize(scribble(SIG_A), (1700, 1000)))  # no dpi: page-sized
    asked: list[str] = []

    def loader(path: Path) -> list[np.ndarray]:  # pages only: the fine scan must not come here
        asked.append(path.name)
        return []  # the detector finds nothing in the large one: one signature, few marks, taken whole

    loader.ident = "no-pages"  # type: ignore[attr-defined]
    g = Gallery.enroll(refs, verifier, loader=loader, cache=tmp_path / "cache")  # type: ignore[arg-type]
    assert g.embeddings["alice"].shape[0] == 3 and asked == ["large.png"]
    (why,) = [v for k, v in g.errors.items() if k.endswith("negative.png")]
    assert "light ink on a dark background" in why
    assert not is_negative(np.full((60, 200), 200, np.uint8))  # a grey e-signature pad's background is paper
    assert not is_negative(np.zeros((60, 200), np.uint8))  # black all over: no ink to speak of ("no ink found")
    cedar = np.full((100, 300), 237, np.uint8)  # CEDAR's grey ink on grey paper, inverted: 120 on 18
    cedar[40:60, 50:250] = 135
    assert is_negative(255 - cedar) and not is_negative(cedar)


def test_a_cheque_image_among_the_specimens_is_cropped_by_the_loader(verifier: Verifier, tmp_path: Path):
    refs = tmp_path / "refs"
    save_image(refs / "alice" / "cheque.png", cheque_image())
    save_image(refs / "alice" / "clean.png", scribble(SIG_A))

    class Loader:
        ident = "stub-loader"

        def __init__(self) -> None:
            self.calls: list[str] = []

        def __call__(self, path: Path) -> list[np.ndarray]:
            self.calls.append(path.name)
            return [scribble(SIG_A)]

    loader = Loader()
    g = Gallery.enroll(refs, verifier, loader=loader, cache=tmp_path / "cache")
    assert loader.calls == ["cheque.png"] and g.embeddings["alice"].shape[0] == 2
    np.testing.assert_allclose(g.embeddings["alice"][0], g.embeddings["alice"][1], atol=1e-5)  # the crop, not the page


def test_a_claim_is_a_keyword_and_read_as_a_claims_file_reads_it(verifier: Verifier, doc_a: Path):
    """predictor(path, "bob") named the document 'bob' and matched it one-to-many: a forgery claimed as bob was
    accepted for matching somebody. And a claim the CLI reads as a REFS folder ('Zoë' decomposed, ' alice ') found
    nobody from Python."""
    import unicodedata

    a = scribble(SIG_A)
    p = predictor(verifier, {"alice": verifier.embed([a]), "Zoë": verifier.embed([a])})
    with pytest.raises(TypeError):
        p(doc_a, "alice")  # type: ignore[misc]
    for claim in (" alice ", ["alice", "alice "], unicodedata.normalize("NFD", "Zoë")):
        r = p(doc_a, claimed=claim)
        assert r.claimed_identity in ("alice", "Zoë") and r.signatures[0].verdict != "no_reference", claim
    from sigpipe.pipeline import Mandate  # a joint account, either to sign: alice's signature is enough
    r = p(doc_a, claimed=Mandate(("alice", "Zoë"), 1))
    assert r.claimed_identity == Mandate(("alice", "Zoë"), 1) and r.verdict == "genuine"
    assert p(doc_a, claimed=("alice", "Zoë")).verdict == "needs_review"


def test_a_page_selection_that_finds_no_signature_says_so(verifier: Verifier, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture):
    """`--pages -1` on a contract whose last page scanned is a blank back page: unsigned, and a warning why."""
    from sigpipe.pipeline.ingest import PageSelection

    doc = save_pdf(tmp_path / "contract.pdf", [page_with([(scribble(SIG_A), 300, 400)]), page_with([])])
    p = predictor(verifier, {"alice": verifier.embed([scribble(SIG_A)])})
    with caplog.at_level("WARNING", logger="sigpipe.pipeline.flow"):
        last = p(doc, claimed="alice", ingest=IngestConfig(pages=PageSelection.parse("-1")))
        every = p(doc, claimed="alice")
    assert (last.verdict, every.verdict) == ("unsigned", "genuine")
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("contract.pdf: unsigned on the page(s) read, 2 (--pages -1)")


def test_other_signers_lets_a_contract_bear_a_counterparty_s_signature(verifier: Verifier, tmp_path: Path):
    """A contract claimed for alice, signed by alice and by a counterparty nobody enrolled: by default the
    counterparty's signature, judged against alice, makes it forged; with other_signers it is other_signer once
    alice's own is genuine, and a contract on which alice's signature fails stays forged."""
    from sigpipe.pipeline.report import DocumentInfo, DocumentReport, RunSettings, SignatureResult

    def sig(x: float, distance: float) -> SignatureResult:
        return SignatureResult(page=1, bbox=(x, 300, x + 200, 380), page_size=(800, 600), dpi=200,
                               detection_confidence=0.9, identity="alice", distance=distance, threshold=0.5,
                               score=0.9 if distance < 0.5 else 0.1, verdict="genuine" if distance < 0.5 else "forged")

    doc = DocumentInfo("contract.pdf", "0" * 64, 1)
    plain, others = RunSettings(200, "pypdfium2", 0.08), RunSettings(200, "pypdfium2", 0.08, other_signers=True)
    r = DocumentReport.success(doc, "alice", [sig(50, 0.2), sig(420, 1.4)], {}, None, plain)
    assert [s.verdict for s in r.signatures] == ["genuine", "forged"] and r.verdict == "forged"
    r = DocumentReport.success(doc, "alice", [sig(50, 0.2), sig(420, 1.4)], {}, None, others)
    assert [s.verdict for s in r.signatures] == ["genuine", "other_signer"] and r.verdict == "genuine"
    assert r.signatures[1].distance == 1.4  # its figures against alice kept for the record
    r = DocumentReport.success(doc, "alice", [sig(50, 0.9), sig(420, 1.4)], {}, None, others)
    assert [s.verdict for s in r.signatures] == ["forged", "forged"] and r.verdict == "forged"  # alice's fails
    # the flow records the setting, and such a report is one the schema accepts
    page = save_image(tmp_path / "one.png", page_with([(scribble(SIG_A), 50, 300)]))
    got = predictor(verifier, {"alice": verifier.embed([scribble(SIG_A)])}, other_signers=True)(  # type: ignore[arg-type]
        page, claimed="alice")
    assert got.settings is not None and got.settings.other_signers and got.to_dict()["settings"]["other_signers"]
    assert "other_signers" not in predictor(verifier, {})(page).to_dict()["settings"]
    edited = dataclasses.replace(got, signatures=(*got.signatures, dataclasses.replace(
        got.signatures[0], bbox=(420, 300, 620, 380), distance=1.4, score=0.1, verdict="other_signer")))
    jsonschema.validate(edited.to_dict(), load_schema())


def test_an_other_signer_verdict_is_only_believed_where_the_rule_gives_it():
    """A report edited to call a forgery other_signer: its document is forged again when the verdict is derived."""
    from sigpipe.pipeline.report import SignatureResult, document_verdict

    def sig(identity: str, verdict: str) -> SignatureResult:
        return SignatureResult(page=1, bbox=(0, 0, 10, 10), page_size=(100, 100), dpi=200, detection_confidence=0.9,
                               identity=identity, distance=0.9, threshold=0.5, score=0.1, verdict=verdict)

    genuine = dataclasses.replace(sig("alice", "genuine"), distance=0.2, score=0.9)
    assert document_verdict([genuine, sig("alice", "other_signer")], claimed="alice", other_signers=True) == "genuine"
    assert document_verdict([genuine, sig("alice", "other_signer")], claimed="alice") == "forged"  # not this run's
    assert document_verdict([sig("alice", "other_signer")], claimed="alice", other_signers=True) == "forged"
    assert document_verdict([genuine, sig("alice", "other_signer")], claimed=("alice", "bob"),
                            other_signers=True) == "forged"  # bob's genuine signature is missing


def test_a_long_document_says_how_far_it_has_got(verifier: Verifier, doc_a: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture):
    # a 400-page contract read for 37 s after the progress line's "ETA 1s", in silence: the operator took it for hung
    from sigpipe.pipeline import flow

    p = predictor(verifier, {"alice": verifier.embed([scribble(SIG_A)])})
    with caplog.at_level(logging.INFO, logger="sigpipe.pipeline.flow"):
        p(doc_a, claimed="alice")
    assert "still reading" not in caplog.text  # a short one says nothing
    monkeypatch.setattr(flow, "STILL_READING_S", 0.0)
    with caplog.at_level(logging.INFO, logger="sigpipe.pipeline.flow"):
        r = p(doc_a, claimed="alice")
    assert r.verdict == "genuine"
    said = [m for m in caplog.messages if "still reading" in m]
    assert said == ["a.pdf: still reading, 1 page(s) read (0 s)", "a.pdf: still reading, 2 page(s) read (0 s)"]


def test_one_signature_of_a_specimen_page_grows_over_its_pieces_and_leaves_a_weak_box():
    from sigpipe.detector.detector import Detection
    from sigpipe.pipeline.flow import one_signature

    sig = Detection((100.0, 100.0, 400.0, 160.0), 0.85)
    memo = Detection((500.0, 300.0, 600.0, 330.0), 0.34)  # a cheque's handwritten memo beside it (a retest)
    assert one_signature([memo, sig]) is sig
    last = Detection((410.0, 95.0, 600.0, 158.0), 0.6)  # the surname boxed apart, on the same line
    grown = one_signature([sig, last, memo])
    assert grown is not None and tuple(grown.bbox) == (100.0, 95.0, 600.0, 160.0) and grown.confidence == 0.85
    officer = Detection((900.0, 100.0, 1200.0, 160.0), 0.8)  # another signature of like standing, apart
    assert one_signature([sig, officer]) is None
    below = Detection((100.0, 300.0, 400.0, 360.0), 0.8)  # or on another line
    assert one_signature([sig, below]) is None


def test_negatives_are_told_from_dark_photos_and_pads():
    rng = np.random.default_rng(0)
    table = np.full((300, 400), 40, np.uint8)  # a white slip on a dark table: 30% of the frame light
    table[60:240, 80:300] = 235
    table[140:160, 120:260] = 30  # its dark ink
    assert not is_negative(table)
    pad = np.full((120, 400), 80, np.uint8)  # a dark-grey e-signature pad: a light guide line, dark ink
    pad[100:102, 20:380] = 200
    pad[40:70, 60:300] = 10
    assert not is_negative(pad)
    neg = (rng.random((120, 400)) * 20).astype(np.uint8)  # a negative: light strokes on black
    neg[50:60, 50:350] = 230
    assert is_negative(neg)


def test_printed_text_makes_a_page_whatever_the_dpi_declared():
    card = cheque_image()  # 550x1200 with print: a page at 300 dpi too (sized at 200 dpi it is 367x800)
    assert looks_like_page(card, 300.0) and looks_like_page(card, 600.0)
