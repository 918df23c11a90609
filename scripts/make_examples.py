"""Regenerate the bundled example batch in ``examples/`` (deterministic; synthetic writers only).

Layout written:

- ``examples/scans/``: about 10 synthetic cheques and letters as PDF (200 dpi), TIFF, PNG and JPEG;
- ``examples/refs/<person>/NN.png``: genuine specimens of each synthetic writer (never the images used in the scans);
- ``examples/claims.csv``: ``document,identity`` for most documents (some left unclaimed for 1:N matching);
- ``examples/truth.json``: every signature's page, box (pixels at 200 dpi), writer and genuine/forged.

Usage: ``.venv/bin/python scripts/make_examples.py [--out examples]``
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from sigpipe.datasets.synth_documents import SynthOptions, generate_documents, load_truth
from sigpipe.datasets.synth_signatures import synth_writer_style, write_corpus

SEED = 11
WRITERS = 4
REFS = 4  # genuine specimens per person in refs/ (genuine 1..REFS); the scans use the others
GENUINE = 10
FORGED = 3
PAGES = 12
MAX_BYTES = 3_000_000


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "writer"


def _person_names(seed: int, writers: int) -> dict[str, str]:
    """Corpus folder (``001``...) -> a folder-safe person name from the writer's synthetic style."""
    names: dict[str, str] = {}
    for i in range(writers):
        slug = _slug(synth_writer_style(np.random.default_rng([seed, i])).name)
        while slug in names.values():
            slug += "-2"
        names[f"{i + 1:03d}"] = slug
    return names


def make_examples(out: Path) -> None:
    """Write the example batch to ``out`` (its ``scans``, ``refs``, ``claims.csv`` and ``truth.json`` are replaced)."""
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        corpus = write_corpus(tmp / "corpus", WRITERS, GENUINE, FORGED, seed=SEED)
        people = _person_names(SEED, WRITERS)
        scan_corpus = tmp / "scan_corpus"
        refs_tmp = tmp / "refs"
        for wid, person in people.items():
            genuine = sorted((corpus / wid / "genuine").glob("*.png"))
            (refs_tmp / person).mkdir(parents=True)
            for p in genuine[:REFS]:
                shutil.copyfile(p, refs_tmp / person / p.name)
            for sub, files in (("genuine", genuine[REFS:]), ("forged", sorted((corpus / wid / "forged").glob("*")))):
                (scan_corpus / person / sub).mkdir(parents=True)
                for p in files:
                    shutil.copyfile(p, scan_corpus / person / sub / p.name)

        opts = SynthOptions(dpi=200, compact=True, two_signers=0.0, unsigned=0.1, forged=0.3)
        scans_tmp = tmp / "scans"
        truth = load_truth(generate_documents(scan_corpus, PAGES, scans_tmp, seed=SEED, kinds=("cheque", "letter"),
                                              options=opts))

        signed = [d for d in truth.documents if d.signatures]
        unclaimed = {d.path for d in truth.documents if not d.signatures} | {signed[-1].path}
        claims = [(d.path, d.signatures[0].writer) for d in signed if d.path not in unclaimed]
        formats = {d.format for d in truth.documents}
        forged = [s for d in truth.documents for s in d.signatures if not s.genuine]
        claimed_forged = [d.path for d in signed if d.path not in unclaimed and not d.signatures[0].genuine]
        assert formats == {"pdf", "tiff", "png", "jpeg"}, f"want every format, got {formats}"
        assert forged and claimed_forged, "want at least one claimed forged signature"
        assert {w for _, w in claims} <= set(people.values())

        for sub in ("scans", "refs"):
            shutil.rmtree(out / sub, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scans").mkdir()
        for d in truth.documents:
            shutil.copyfile(scans_tmp / d.path, out / "scans" / d.path)
        shutil.copytree(refs_tmp, out / "refs")
        with (out / "claims.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["document", "identity"])
            w.writerows(claims)
        replace(truth, corpus="synthetic writers (scripts/make_examples.py); paths relative to scans/").save(
            out / "truth.json")

    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total < MAX_BYTES, f"examples are {total} bytes, over {MAX_BYTES}"
    print(f"{len(truth.documents)} documents ({sum(d.pages for d in truth.documents)} pages), "
          f"{len(claims)} claims, {len(forged)} forged signatures, {len(people)} people, {total / 1e6:.2f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "examples")
    make_examples(ap.parse_args().out)


if __name__ == "__main__":
    main()
