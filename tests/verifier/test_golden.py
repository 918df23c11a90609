"""Golden test: the shipped verifier gives the recorded embeddings, pair logit and distance for fixture images.

Regenerate after shipping new weights: ``.venv/bin/python tests/verifier/test_golden.py``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "verifier_golden.json"
IMAGES = [ROOT / "examples" / "refs" / "j-kowalski" / "01.png", ROOT / "examples" / "refs" / "i-wright" / "02.png"]


def compute(backend: str | None = None) -> dict:
    from sigpipe.datasets.corpus import read_gray
    from sigpipe.verifier.verifier import Verifier

    v = Verifier.from_manifest(backend=backend)
    x = v.prepare([read_gray(p) for p in IMAGES])
    emb = v.embed_prepared(x)
    d = v.decide(emb[0], emb[1:], x[0], x[1:, 0])
    return {"model": v.ident, "images": [str(p.relative_to(ROOT)) for p in IMAGES],
            "embeddings": np.round(emb, 6).tolist(), "distance": d.distance, "pair_logit": d.pair_logit}


@pytest.mark.skipif(not (ROOT / "sigpipe" / "weights" / "verifier.pt.json").exists(), reason="no shipped verifier")
@pytest.mark.parametrize("backend", [None, "pt", "onnx"])
def test_shipped_verifier_reproduces_golden_embeddings(backend: str | None):
    golden = json.loads(GOLDEN.read_text())
    now = compute(backend)
    assert now["model"] == golden["model"], "shipped verifier changed: regenerate tests/fixtures/verifier_golden.json"
    np.testing.assert_allclose(np.array(now["embeddings"]), np.array(golden["embeddings"]), atol=2e-4)
    assert now["distance"] == pytest.approx(golden["distance"], abs=2e-4)
    if golden.get("pair_logit") is not None:  # the second stage, on both backends
        assert now["pair_logit"] == pytest.approx(golden["pair_logit"], abs=2e-3)
    assert np.allclose(np.linalg.norm(now["embeddings"], axis=1), 1.0, atol=1e-4)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    GOLDEN.write_text(json.dumps(compute("pt"), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
