"""What ``sigpipe run --accept-score P`` does to the document verdicts of labelled batches; prints JSON.

Usage: .venv/bin/python benchmarks/accept_score.py WORK [WORK ...] [--scores 0.5,0.6,0.7,0.8,0.9]

Each WORK is the ``--work`` folder of a ``benchmarks/end_to_end.py`` run (its ``batch/truth.json`` and the reports
in ``out-claims``). The document verdicts are derived again from the reports' signatures with each bar P
(``sigpipe.pipeline.report.document_verdict``: a document whose signatures are all judged genuine is ``genuine``
only when each has a score of at least P, else ``needs_review``), so no model runs. A document is *genuine* in
truth when every signature on it is a genuine signature of the claimed person, *forged* when one is not (a skilled
forgery or another person's signature); unsigned and failed documents are left out. For each P:

- ``genuine_accepted``: genuine documents whose verdict is ``genuine`` (paid without a look);
- ``genuine_review``: genuine documents sent to a person (``needs_review``), ``genuine_rejected``: called ``forged``;
- ``forged_accepted``: forged documents whose verdict is ``genuine``: the harm the bar is there to cut;
- ``forged_review`` and ``forged_rejected`` likewise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sigpipe.pipeline.report import DocumentReport, document_verdict, read_report


def truth_documents(work: Path) -> list[tuple[dict[str, Any], DocumentReport]]:
    """The signed documents of a batch with their report (documents whose run failed are left out)."""
    truth = json.loads((work / "batch" / "truth.json").read_text())
    out = []
    for doc in truth["documents"]:
        if not doc["signatures"]:
            continue
        report = read_report(work / "out-claims" / f"{doc['path']}.json")
        if report is not None and report.ok:
            out.append((doc, report))
    return out


def outcomes(docs: list[tuple[dict[str, Any], DocumentReport]], accept: float | None) -> dict[str, Any]:
    counts = {f"{t}_{v}": 0 for t in ("genuine", "forged") for v in ("accepted", "review", "rejected")}
    for doc, report in docs:
        claimed = doc["signatures"][0]["writer"]
        forged = any(not s["genuine"] or s["writer"] != claimed for s in doc["signatures"])
        verdict = document_verdict(report.signatures, claimed=report.claimed_identity, accept_score=accept)
        got = {"genuine": "accepted", "forged": "rejected"}.get(verdict, "review")
        counts[f"{'forged' if forged else 'genuine'}_{got}"] += 1
    genuine = sum(v for k, v in counts.items() if k.startswith("genuine"))
    forged = sum(v for k, v in counts.items() if k.startswith("forged"))
    rates = {k: round(v / (genuine if k.startswith("genuine") else forged), 4) if (genuine if k.startswith(
        "genuine") else forged) else None for k, v in counts.items()}
    return {"accept_score": accept, "genuine_documents": genuine, "forged_documents": forged, **rates,
            "counts": counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path, nargs="+", help="--work folders of benchmarks/end_to_end.py runs")
    ap.add_argument("--scores", default="0.5,0.6,0.7,0.8,0.9", help="bars to try, comma-separated")
    args = ap.parse_args()
    bars: list[float | None] = [None, *(float(v) for v in args.scores.split(","))]
    result = {}
    pooled: list[tuple[dict[str, Any], DocumentReport]] = []
    for work in args.work:
        docs = truth_documents(work)
        pooled += docs
        result[work.name] = [outcomes(docs, p) for p in bars]
    if len(args.work) > 1:
        result["pooled"] = [outcomes(pooled, p) for p in bars]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
