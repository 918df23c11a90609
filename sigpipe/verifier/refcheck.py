"""Reference hygiene: specimens that do not look like the rest of their person's references.

A specimen filed under the wrong person (someone else's signature card scanned into ``REFS/alice/``, a mixed-up
file) is the most damaging mistake a references folder can hold: the decision takes the *minimum* distance to a
person's references, so every signature resembling the stray specimen is accepted as that person's. Each specimen is
compared with its person's other specimens as if it were a questioned signature (leave one out, the verifier's full
decision); one whose distance is beyond the threshold those others give by more than the manifest's
``decision.outlier_margin`` is a suspect.

Two stages, so that a gallery of 10,000 people is checked in seconds: the Siamese distance (a small distance matrix
a person) screens every specimen, and only those past ``decision.outlier_screen`` (about one in ten genuine ones)
are compared in full, second stage included. Both values are calibrated on validation writers
(:func:`calibrate_outlier_check`): about 0.5% of genuine specimens are flagged there, while another writer's
signature is flagged almost always (``benchmarks/reference_check.py``). A writer whose signatures vary a lot gets
more flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sigpipe.verifier.decide import DecisionRule
from sigpipe.verifier.gallery import SHORTLIST

if TYPE_CHECKING:
    from sigpipe.verifier.data import SignatureArrays
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.verifier.verifier import Verifier

GALLERY_SIZES = (2, 3, 5, 8)  # reference counts the margin is calibrated over
RESEMBLE_BATCH = 256  # suspects ranked against everybody per distance matrix
SCREEN_BATCH = 4096  # people screened per batched distance product
FLAG_RATE = 0.005  # share of validation writers' genuine specimens flagged at the calibrated margin
SCREEN_PASS = 0.1  # share of validation writers' genuine specimens the Siamese screen passes to the full decision


@dataclass(frozen=True)
class SuspectSpecimen:
    """A reference specimen unlike the rest of its person's specimens.

    Attributes:
        person: whose folder it is in.
        file: the specimen file (as ``reference_errors`` names files).
        margin: its distance to the person's other specimens minus the threshold they give (> the manifest's
            ``decision.outlier_margin``; above 0 means it would be judged ``forged`` as a questioned signature).
        resembles: the other enrolled person it is most clearly genuine for, as one-to-many matching picks them
            (``Gallery.best_match``), e.g. the person it really belongs to; None when it is within nobody's
            threshold.
    """

    person: str
    file: str
    margin: float
    resembles: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "file": self.file, "margin": round(self.margin, 4),
                "resembles": self.resembles}

    def message(self) -> str:
        also = f" and is within the threshold of '{self.resembles}'" if self.resembles else ""
        return (f"reference {self.file} does not match the other specimens of '{self.person}' (distance "
                f"{self.margin:+.3f} beyond their threshold){also}: is it someone else's signature? It is used all "
                "the same (summary.json suspect_references)")


def loo_margins(emb: np.ndarray, rule: DecisionRule) -> np.ndarray:
    """Each specimen's leave-one-out margin: its aggregated Siamese distance to the other specimens minus the
    threshold those others give (their number and spread, as :meth:`Verifier.decide` computes it without a second
    stage). ``(n,)``; empty for fewer than two specimens."""
    e = np.atleast_2d(np.asarray(emb, np.float64))
    return loo_margins_many(e[None], rule)[0] if len(e) >= 2 else np.zeros(0)


def loo_margins_many(emb: np.ndarray, rule: DecisionRule) -> np.ndarray:
    """:func:`loo_margins` of P people with n >= 2 specimens each at once: ``(P, n, D)`` -> ``(P, n)``.

    The distances among each person's specimens come from one batched product; the others' spread, leaving
    specimen i out, is the mean of the pairwise distances not involving i: ``(total - row_i) / C(n-1, 2)``.
    """
    e = np.asarray(emb, np.float64)
    p, n, _ = e.shape
    sq = (e * e).sum(-1)
    d = np.sqrt(np.clip(sq[:, :, None] + sq[:, None, :] - 2.0 * e @ e.transpose(0, 2, 1), 0.0, None))
    eye = np.eye(n, dtype=bool)
    d[:, eye] = 0.0
    rows = d.sum(-1)  # (P, n): each specimen's distances to the others, summed
    k = n - 1
    pairs = k * (k - 1) / 2
    spread = (rows.sum(-1, keepdims=True) / 2 - rows) / pairs if k >= 2 else np.zeros((p, n))
    if rule.aggregation == "min":
        agg = np.where(eye, np.inf, d).min(-1)
    else:
        agg = rows / k
        if rule.aggregation == "normalised":
            agg = np.where(spread > 1e-6, agg / np.maximum(spread, 1e-6), agg)
    base = rule.threshold(k, 0.0)
    threshold = base + rule.spread_weight * spread if k >= 2 else np.full((p, n), base)
    return agg - threshold


def full_loo_margins(verifier: Verifier, emb: np.ndarray, images: np.ndarray | None,
                     which: Sequence[int] | np.ndarray) -> np.ndarray:
    """Leave-one-out margins of the specimens ``which`` by the verifier's full decision (its second stage
    included, which needs the preprocessed ``images`` ``(n, H, W)``): ``(len(which),)``."""
    n = len(emb)
    out = np.empty(len(which))
    for j, i in enumerate(which):
        others = np.delete(np.arange(n), i)
        d = verifier.decide(emb[i], emb[others], None if images is None else images[i][None],
                            None if images is None else images[others])
        out[j] = d.distance - d.threshold
    return out


def calibrate_outlier_check(verifier: Verifier, emb: np.ndarray, images: np.ndarray, writer: np.ndarray,
                            forged: np.ndarray, sizes: Sequence[int] = GALLERY_SIZES, rate: float = FLAG_RATE,
                            screen_pass: float = SCREEN_PASS, seed: int = 0) -> tuple[float, float, dict[str, Any]]:
    """The margin beyond which a specimen is a suspect and the Siamese screen, from validation writers' genuine
    signatures (``emb`` ``(N, D)`` and ``images`` ``(N, H, W)`` aligned with ``writer`` and ``forged``).

    Each writer's genuine signatures are shuffled (``seed``) and cut into disjoint galleries of each size in
    ``sizes``; every specimen's leave-one-out margin is pooled, by the Siamese distance (:func:`loo_margins`) and by
    the full decision (:func:`full_loo_margins`). The margin is the full margins' ``1 - rate`` quantile (about
    ``rate`` of genuine specimens are flagged), the screen the Siamese margins' ``1 - screen_pass`` quantile.

    Returns:
        ``(margin, screen, record)``, the record saying how they were chosen (for the manifest's calibration).
    """
    rng = np.random.default_rng(seed)
    siamese, full = [], []
    writers = sorted(set(np.asarray(writer)[~np.asarray(forged)].tolist()))
    for w in writers:
        idx = np.flatnonzero((writer == w) & ~forged)
        for n in sizes:
            perm = rng.permutation(idx)
            for s in range(0, len(perm) - n + 1, n):
                gal = perm[s : s + n]
                siamese.append(loo_margins(emb[gal], verifier.rule))
                full.append(full_loo_margins(verifier, emb[gal], images[gal], np.arange(n)))
    if not siamese:
        raise ValueError(f"no writer has {min(sizes)} genuine signatures to calibrate the outlier check on")
    sm, fm = np.concatenate(siamese), np.concatenate(full)
    margin = float(np.quantile(fm, 1.0 - rate, method="higher"))
    screen = min(float(np.quantile(sm, 1.0 - screen_pass, method="lower")), margin)
    return margin, screen, {
        "method": "leave-one-out margins (distance to the other specimens minus their threshold) of validation "
                  f"writers' genuine specimens in disjoint galleries of {list(sizes)}: outlier_margin = the "
                  f"{1 - rate:.3g} quantile of the full decision's, outlier_screen = the {1 - screen_pass:.3g} "
                  "quantile of the Siamese distance's",
        "specimens": int(fm.size), "writers": len(writers), "seed": seed,
        "flag_rate": float(np.mean(fm > margin)), "screen_pass_rate": float(np.mean(sm > screen)),
        "flag_rate_screened": float(np.mean((sm > screen) & (fm > margin))),
    }


def calibrate_manifest(manifest: Path, val: SignatureArrays) -> dict[str, Any]:
    """Give the verifier manifest at ``manifest`` the check's ``decision.outlier_margin`` and ``outlier_screen``,
    calibrated on ``val`` (its validation writers' signatures), in place: verdicts do not depend on them, so the
    model keeps its identity. Returns the calibration record (also in ``decision.calibration.outlier``)."""
    from sigpipe.verifier.verifier import Verifier
    from sigpipe.weights import Manifest, manifest_text

    m = Manifest.load(manifest)
    v = Verifier(m)  # its default backend: references are embedded that way by sigpipe run
    margin, screen, record = calibrate_outlier_check(v, v.embed_prepared(val.as_float()), val.images, val.writer,
                                                     val.forged)
    record = {**record, "backend": v.backend}
    rule = dataclasses.replace(v.rule, outlier_margin=margin, outlier_screen=screen,
                               calibration={**v.rule.calibration, "outlier": record})
    manifest.write_text(manifest_text({**m.data, "decision": rule.to_dict()}))
    return {"outlier_margin": margin, "outlier_screen": screen, **record}


def suspect_specimens(gallery: Gallery) -> list[SuspectSpecimen]:
    """The specimens of ``gallery`` beyond its verifier's ``decision.outlier_margin``, person by person, worst first
    within a person (an empty list, no check, when the manifest has no margin).

    Specimens whose Siamese leave-one-out margin passes ``decision.outlier_screen`` are compared in full.
    """
    rule = gallery.verifier.rule
    if rule.outlier_margin is None:
        return []
    screen = rule.outlier_margin if rule.outlier_screen is None else rule.outlier_screen
    found: list[tuple[str, str, float, np.ndarray, np.ndarray | None]] = []
    by_size: dict[int, list[str]] = {}  # people by number of specimens: each group screened in one product
    for person in gallery.people:
        by_size.setdefault(len(gallery.embeddings[person]), []).append(person)
    screened: dict[str, np.ndarray] = {}
    for n, size_group in by_size.items():
        if n >= 2:
            for at in range(0, len(size_group), SCREEN_BATCH):
                group = size_group[at : at + SCREEN_BATCH]
                margins = loo_margins_many(np.stack([gallery.embeddings[q] for q in group]), rule)
                screened.update(zip(group, margins, strict=True))
    for person in gallery.people:
        if person not in screened:
            continue
        emb = gallery.embeddings[person]
        candidates = np.flatnonzero(screened[person] > screen)
        if not candidates.size:
            continue
        images = gallery.images.get(person) if gallery.verifier.needs_images else None
        full = full_loo_margins(gallery.verifier, emb, images, candidates)
        for j in np.argsort(-full, kind="stable"):
            if full[j] > rule.outlier_margin:
                i = candidates[j]
                rel = gallery.source(person, int(i))
                file = f"{person}[{i}]" if rel is None else gallery.specimen_path(rel)
                found.append((person, file, float(full[j]), emb[i], None if images is None else images[i][None]))
    out = []
    for at in range(0, len(found), RESEMBLE_BATCH):  # everybody's Siamese margins for a batch of suspects at once
        batch = found[at : at + RESEMBLE_BATCH]
        people, margins = gallery.margins(np.stack([item[3] for item in batch]))
        for (person, file, margin, emb, image), row in zip(batch, margins, strict=True):
            out.append(SuspectSpecimen(person, file, margin, _resembles(gallery, people, row, person, emb, image)))
    return out


def _resembles(gallery: Gallery, people: Sequence[str], margins: np.ndarray, person: str, emb: np.ndarray,
               image: np.ndarray | None) -> str | None:
    """The person other than ``person`` a suspect specimen is most clearly genuine for, if any, as one-to-many
    matching picks (``Gallery.best_match``): the few best by Siamese margin ``margins`` compared in full."""
    shortlist = [people[i] for i in np.argsort(margins, kind="stable") if people[i] != person][:SHORTLIST]
    best, best_margin = None, 0.0
    for other in shortlist:
        d = gallery.compare(emb, other, image).decision
        if d.distance - d.threshold <= best_margin:
            best, best_margin = other, d.distance - d.threshold
    return best
