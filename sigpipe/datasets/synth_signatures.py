"""Synthetic signatures: writers with a stable personal style, natural genuine variation and skilled forgeries.

A writer (``WriterStyle``) is a name signed in a handwriting font (OFL ``fontpkg-*`` packages) with a personal slant,
proportions, letter spacing, pen width and darkness, an optional flourish (underline, swash, loop, paraph) and an
optional illegible trail replacing the end of the surname. Glyphs are reduced to their skeleton and redrawn with a
round pen (ballpoint look), optionally mixed with the font's own outline (some calligraphic contrast).

A genuine sample (``render_signature(style, rng)``) varies naturally: small random affine, smooth displacement field,
baseline drift, pen width and pressure jitter, flourish jitter. A skilled forgery (``forged=True``) is the same name
imitated by another hand (``forger_style``): usually the same font, sometimes a similar one, drifted proportions, slant
and flourish, and executed slowly: larger shape drift, tremor (high-frequency wobble), hesitation (pen lifts: small
gaps, ink dots) and heavier, more even strokes. Paper, scan noise and crop margins are drawn from the same
distributions for genuine and forged samples so that they carry no shortcut.

Everything random comes from a ``numpy.random.Generator`` passed in: ``write_corpus`` draws writer ``i`` from
``default_rng([seed, i])`` and its samples from ``default_rng([seed, i, kind, j])``, so the same seed gives
byte-identical files and adding samples does not change the existing ones.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import fontpkg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sigpipe.errors import InputError

log = logging.getLogger(__name__)

#: Handwriting fonts, by family of look. Forgers who change font stay in the same family.
FONT_GROUPS: dict[str, tuple[str, ...]] = {
    "script": ("dancing-script", "great-vibes", "satisfy", "yellowtail", "pacifico"),
    "hand": ("caveat", "zeyada", "kalam", "indie-flower", "shadows-into-light"),
}
#: Relative frequency of each font for a new writer (the more natural-looking ones more often).
FONT_WEIGHTS: dict[str, float] = {
    "dancing-script": 1.2, "great-vibes": 1.0, "satisfy": 1.0, "yellowtail": 1.0, "pacifico": 0.5,
    "caveat": 1.2, "zeyada": 1.3, "kalam": 0.8, "indie-flower": 0.7, "shadows-into-light": 0.9,
}  # fmt: skip
FONTS: tuple[str, ...] = tuple(FONT_WEIGHTS)
#: Fonts whose letters look alike: a forger who does not keep the writer's letter forms picks one of these.
SIMILAR_FONTS: dict[str, tuple[str, ...]] = {
    "dancing-script": ("satisfy", "yellowtail"),
    "great-vibes": ("dancing-script", "satisfy"),
    "satisfy": ("dancing-script", "yellowtail"),
    "yellowtail": ("satisfy", "dancing-script"),
    "pacifico": ("yellowtail", "satisfy"),
    "caveat": ("indie-flower", "shadows-into-light", "zeyada"),
    "zeyada": ("caveat", "shadows-into-light"),
    "kalam": ("indie-flower", "caveat"),
    "indie-flower": ("kalam", "caveat"),
    "shadows-into-light": ("caveat", "indie-flower"),
}

_FIRST = (
    "Anna", "Maria", "James", "John", "Robert", "Linda", "David", "Laura", "Peter", "Sarah", "Michael", "Elena",
    "Thomas", "Julia", "Daniel", "Sofia", "Mark", "Helen", "Paul", "Irene", "George", "Nadia", "Victor", "Carla",
    "Oscar", "Emma", "Hugo", "Clara", "Felix", "Nora", "Ivan", "Lucia", "Samuel", "Rosa", "Adam", "Eva", "Rahul",
    "Priya", "Kenji", "Amira", "Omar", "Fatima", "Pierre", "Chloe", "Lars", "Ingrid", "Pablo", "Marta", "Jason",
    "Virginia", "Charles", "Dorothy", "Walter", "Agnes", "Frank", "Grace", "Henry", "Olivia", "Arthur", "Alice",
)  # fmt: skip
_LAST = (
    "Smith", "Holt", "Brown", "Miller", "Wilson", "Moore", "Taylor", "Turner", "Walker", "Harris", "Martin", "Clark",
    "Lewis", "Young", "Allen", "Wright", "Scott", "Baker", "Nelson", "Carter", "Mitchell", "Roberts", "Campbell",
    "Parker", "Evans", "Edwards", "Collins", "Stewart", "Morris", "Rogers", "Reed", "Cook", "Morgan", "Bell",
    "Murphy", "Bailey", "Rivera", "Cooper", "Howard", "Ward", "Torres", "Peterson", "Gray", "Ramirez", "Watson",
    "Brooks", "Kelly", "Sanders", "Price", "Bennett", "Wood", "Barnes", "Ross", "Henderson", "Coleman", "Jenkins",
    "Perry", "Powell", "Long", "Patterson", "Hughes", "Flores", "Shah", "Kumar", "Novak", "Weber", "Fischer",
    "Rossi", "Costa", "Dubois", "Lindqvist", "Tanaka", "Haddad", "Okafor", "Kowalski", "Jansen", "Moreau",
)  # fmt: skip
_ONSETS = ("b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "r", "s", "st", "t", "v", "w")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ie", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "t", "m", "nd", "rt", "ll", "ss", "ck", "rd", "ns")


@dataclass(frozen=True)
class WriterStyle:
    """A writer's personal way of signing. Lengths are in pixels of the rendered text unless stated.

    Attributes:
        name: the full name being signed (e.g. ``"Jason Holt"``).
        text: the part written as letters (``name`` or a prefix of it when ``trail`` replaces the end).
        font: ``fontpkg`` family slug (one of ``FONTS``).
        size: font size in pixels (text height is roughly ``size``).
        tracking: extra space between letters, as a fraction of ``size`` (letter-by-letter fonts only).
        word_gap: extra space between words, as a fraction of ``size``.
        slant: horizontal shear (``x += slant * height above baseline``); positive leans right.
        x_scale: horizontal proportion factor.
        y_scale: vertical proportion factor.
        rotation: baseline angle in degrees (positive = rising to the right).
        pen: pen (stroke) width in pixels.
        contrast: 0 = monoline ballpoint following the glyph skeleton, up to ~0.5 = part of the font's own
            thick/thin outline mixed in.
        pressure: relative pen width variation along the strokes (0 = even).
        ink: ink grey level, 0-255 (0 = black).
        variability: how much this writer's own samples vary (multiplies the genuine jitter).
        strokes: flourish and trail strokes, each a tuple of ``(x, y)`` points in units of ``size``, ``x`` from the
            left of the text and ``y`` down from the baseline; drawn as smooth curves through the points.
        strokes_width: the text width (units of ``size``) the strokes were laid out for; when a forger's font
            writes the text wider or narrower, stroke ``x`` coordinates are stretched to match.
        shape_seed: seed of this hand's personal deformation of the font's letter shapes (fixed for the writer).
        shape_amp: amplitude of that deformation, as a fraction of ``size``.
    """

    name: str
    text: str
    font: str
    size: float
    tracking: float
    word_gap: float
    slant: float
    x_scale: float
    y_scale: float
    rotation: float
    pen: float
    contrast: float
    pressure: float
    ink: float
    variability: float
    strokes: tuple[tuple[tuple[float, float], ...], ...]
    strokes_width: float
    shape_seed: int
    shape_amp: float


# ----------------------------------------------------------------------------------------------------------- names


def synth_name(rng: np.random.Generator) -> str:
    """A plausible name as people sign it: ``"Jason Holt"``, ``"J. Holt"``, ``"J.R. Holt"``, ``"Holt"``...

    Surnames come from a small list or are built from syllables; first names from a small list.
    """
    first = str(rng.choice(_FIRST))
    if rng.random() < 0.4:
        last = "".join(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) for _ in range(rng.integers(1, 3)))
        last = (last + str(rng.choice(_CODAS))).capitalize()
    else:
        last = str(rng.choice(_LAST))
    initial = str(rng.choice(list("ABCDEFGHJKLMNPRSTVW")))
    forms = (
        (0.34, f"{first} {last}"),
        (0.20, f"{first[0]}. {last}"),
        (0.10, f"{first[0]} {last}"),
        (0.10, f"{first[0]}.{initial}. {last}"),
        (0.10, last),
        (0.08, f"{first} {last[0]}."),
        (0.08, f"{first.lower()} {last.lower()}"),
    )
    p = np.array([f[0] for f in forms])
    return forms[int(rng.choice(len(forms), p=p / p.sum()))][1]


# ---------------------------------------------------------------------------------------------------- text glyphs


@lru_cache(maxsize=64)
def _font(slug: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(fontpkg.path(slug)), size)


def _is_script(slug: str) -> bool:
    return slug in FONT_GROUPS["script"]


def _layout(slug: str, text: str, size: int, tracking: float, word_gap: float) -> list[tuple[str, float]]:
    """Pieces of text and their x offsets (pixels from the text start, on the baseline).

    Connected script fonts are laid out word by word (so that glyphs keep joining); the others letter by letter,
    with ``tracking`` added between letters.
    """
    font = _font(slug, size)
    pieces: list[tuple[str, float]] = []
    x = 0.0
    for k, word in enumerate(text.split(" ")):
        if k:
            x += font.getlength(" ") + word_gap * size
        if _is_script(slug):
            pieces.append((word, x))
            x += font.getlength(word)
        else:
            for i, ch in enumerate(word):
                pieces.append((ch, x + font.getlength(word[:i]) + i * tracking * size))
            x += font.getlength(word) + max(len(word) - 1, 0) * tracking * size
    return pieces


def _text_width(slug: str, text: str, size: int, tracking: float, word_gap: float) -> float:
    """Advance width of ``text`` in pixels, with the layout of ``_layout``."""
    font = _font(slug, size)
    pieces = _layout(slug, text, size, tracking, word_gap)
    last, x = pieces[-1]
    return x + font.getlength(last)


@lru_cache(maxsize=1)
def _zhang_suen_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two Zhang-Suen sub-iterations, indexed by the 8-neighbour code (bit k = P(k+2))."""
    lut1 = np.zeros(256, dtype=bool)
    lut2 = np.zeros(256, dtype=bool)
    for code in range(256):
        p = [(code >> k) & 1 for k in range(8)]  # P2..P9: N, NE, E, SE, S, SW, W, NW
        b = sum(p)
        a = sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))
        if 2 <= b <= 6 and a == 1:
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            lut1[code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
            lut2[code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    lut1.setflags(write=False)
    lut2.setflags(write=False)
    return lut1, lut2


def skeletonize(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning.

    Args:
        mask: ``(H, W)`` bool, True = ink.

    Returns:
        ``(H, W)`` bool, the one-pixel-wide 8-connected skeleton of ``mask``.
    """
    out = np.zeros(mask.shape, dtype=bool)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    out[y0:y1, x0:x1] = _zhang_suen(mask[y0:y1, x0:x1])
    return out


def _zhang_suen(mask: np.ndarray) -> np.ndarray:
    lut1, lut2 = _zhang_suen_luts()
    img = np.pad(mask.astype(np.uint8), 1)
    h, w = mask.shape
    # neighbour offsets P2..P9 as (dy, dx)
    offs = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
    while True:
        changed = False
        for lut in (lut1, lut2):
            code = np.zeros((h, w), dtype=np.uint8)
            for k, (dy, dx) in enumerate(offs):
                code |= img[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] << k
            inner = img[1:-1, 1:-1]
            delete = (inner == 1) & lut[code]
            if delete.any():
                inner[delete] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


@dataclass(frozen=True)
class _Glyphs:
    """The rendered text of a style, shared by all its samples.

    ``skeleton`` (bool) and ``sdf`` (float32, pixels, negative inside the glyphs) are ``(H, W)``; the baseline
    starts at ``origin`` (x, y) and the text is ``width`` pixels wide.
    """

    skeleton: np.ndarray
    sdf: np.ndarray
    origin: tuple[float, float]
    width: float


@lru_cache(maxsize=48)
def _glyphs(slug: str, text: str, size: int, tracking: float, word_gap: float) -> _Glyphs:
    font = _font(slug, size)
    pieces = _layout(slug, text, size, tracking, word_gap)
    width = _text_width(slug, text, size, tracking, word_gap)
    ascent, descent = font.getmetrics()
    pad_l, pad_r, pad_t, pad_b = 0.9 * size, 1.3 * size, 0.5 * size, 1.1 * size
    w = int(math.ceil(width + pad_l + pad_r))
    h = int(math.ceil(ascent + descent + pad_t + pad_b))
    origin = (pad_l, pad_t + ascent)
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for piece, x in pieces:
        draw.text((origin[0] + x, origin[1]), piece, font=font, fill=255, anchor="ls")
    mask = np.asarray(img) > 127
    skeleton = skeletonize(mask)
    m8 = mask.astype(np.uint8)
    sdf = cv2.distanceTransform(1 - m8, cv2.DIST_L2, 3) - cv2.distanceTransform(m8, cv2.DIST_L2, 3)
    skeleton.setflags(write=False)
    sdf.setflags(write=False)
    return _Glyphs(skeleton, sdf, origin, width)


# ----------------------------------------------------------------------------------------------------------- styles


def _flourish(rng: np.random.Generator, tw: float) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Flourish strokes for a text ``tw`` size-units wide (coordinates in size units, y down from baseline)."""
    kind = rng.choice(["none", "underline", "swash", "loop", "paraph", "dash"], p=[0.3, 0.25, 0.18, 0.1, 0.1, 0.07])
    y = rng.uniform(0.2, 0.45)
    tilt = rng.normal(0, 0.06)
    if kind == "underline":
        x0, x1 = rng.uniform(-0.3, 0.3 * tw), tw + rng.uniform(-0.1, 0.4)
        sag = rng.normal(0, 0.08)
        return (((x0, y), ((x0 + x1) / 2, y + sag + tilt * (x1 - x0) / 2), (x1, y + tilt * (x1 - x0))),)
    if kind == "swash":  # from the end of the last letter, down and back under the name
        x1 = rng.uniform(0.0, 0.5 * tw)
        return (((tw - 0.05, -0.1), (tw + rng.uniform(0.1, 0.35), y), ((tw + x1) / 2, y + 0.1 + tilt), (x1, y + 0.05)),)
    if kind == "loop":  # underline that starts with a loop
        x0 = rng.uniform(-0.2, 0.2)
        r = rng.uniform(0.12, 0.22)
        x1 = tw + rng.uniform(-0.1, 0.3)
        return (
            (
                (x0 + 2 * r, y + r),
                (x0 + r, y + 2 * r),
                (x0, y + r),
                (x0 + r, y),
                (x0 + 3 * r, y + 0.6 * r),
                (x1, y + 0.4 * r + tilt),
            ),
        )
    if kind == "paraph":  # zigzag garland under the end of the name
        n = int(rng.integers(3, 6))
        xa = rng.uniform(0.3, 0.6) * tw
        xb = tw + rng.uniform(0.0, 0.3)
        amp = rng.uniform(0.12, 0.3)
        return (tuple((xa + (xb - xa) * i / n, y + (amp if i % 2 else 0.0) + 0.1 * tilt * i) for i in range(n + 1)),)
    if kind == "dash":  # a short stroke or dot after the name
        x = tw + rng.uniform(0.1, 0.3)
        return (((x, -0.2), (x + rng.uniform(0.1, 0.3), -0.25 + rng.normal(0, 0.05))),)
    return ()


def _trail(rng: np.random.Generator, x0: float, n_letters: int) -> tuple[tuple[float, float], ...]:
    """An illegible wave standing for ``n_letters`` letters, from ``x0`` (size units) on the baseline.

    Either an arcade (rounded tops, like a run of ``m``) or a garland (rounded bottoms, like ``uuu``), with humps
    shrinking towards the end and an optional rising tail.
    """
    humps = max(2, int(round(n_letters * rng.uniform(0.5, 0.9))))
    step = rng.uniform(0.2, 0.32)
    height = rng.uniform(0.22, 0.4)
    arcade = rng.random() < 0.5
    decay = rng.uniform(0.0, 0.6)
    t = np.linspace(0.0, 1.0, humps * 8 + 1)
    phase = np.abs(np.sin(np.pi * humps * t))
    wave = phase if arcade else 1 - np.abs(np.cos(np.pi * humps * t))
    y = -height * (1 - decay * t) * wave - 0.02
    x = x0 + step * humps * t
    pts = [(x0 - 0.05, -0.05), *zip(x.tolist(), y.tolist(), strict=True)]
    if rng.random() < 0.5:  # a tail at the end
        pts.append((pts[-1][0] + rng.uniform(0.2, 0.5), -height * rng.uniform(0.2, 1.0)))
    return tuple(pts)


def synth_writer_style(rng: np.random.Generator) -> WriterStyle:
    """Draw a new writer: a name and a personal, stable way of signing it.

    Args:
        rng: the random generator; the same state gives the same style.
    """
    name = synth_name(rng)
    slugs = list(FONT_WEIGHTS)
    p = np.array([FONT_WEIGHTS[s] for s in slugs])
    font = slugs[int(rng.choice(len(slugs), p=p / p.sum()))]
    tracking = float(rng.uniform(-0.02, 0.12)) if not _is_script(font) else 0.0
    word_gap = float(rng.uniform(-0.15, 0.3))
    text = name
    trail_letters = 0
    last = name.split(" ")[-1]
    if len(last) >= 4 and rng.random() < 0.25:  # the end of the surname trails off into a garland
        keep = int(rng.integers(1, 3))
        trail_letters = len(last) - keep
        text = name[: len(name) - trail_letters]
    target = float(rng.uniform(300, 620))  # text width in pixels
    ref = _text_width(font, text, 100, tracking, word_gap) + trail_letters * 30.0
    size = float(np.clip(100.0 * target / max(ref, 1.0), 45, 130))
    tw = _text_width(font, text, int(round(size)), tracking, word_gap) / size
    strokes: tuple[tuple[tuple[float, float], ...], ...] = ()
    if trail_letters:
        strokes = (_trail(rng, tw, trail_letters),)
    strokes = (*strokes, *_flourish(rng, max([tw, *(x for x, _ in strokes[0])]) if strokes else tw))
    return WriterStyle(
        name=name,
        text=text,
        font=font,
        size=size,
        tracking=tracking,
        word_gap=word_gap,
        slant=float(rng.normal(0.12, 0.15)),
        x_scale=float(np.exp(rng.normal(0, 0.12))),
        y_scale=float(np.exp(rng.normal(0, 0.12))),
        rotation=float(rng.normal(2.0, 3.0)),
        pen=float(rng.uniform(1.6, 3.4)),
        contrast=float(rng.choice([0.0, rng.uniform(0.15, 0.5)], p=[0.7, 0.3])),
        pressure=float(rng.uniform(0.1, 0.45)),
        ink=float(rng.uniform(10, 80)),
        variability=float(rng.uniform(0.6, 1.4)),
        strokes=strokes,
        strokes_width=tw,
        shape_seed=int(rng.integers(2**31)),
        shape_amp=float(rng.uniform(0.025, 0.055)),
    )


def forger_style(style: WriterStyle, rng: np.random.Generator) -> WriterStyle:
    """Another hand imitating ``style``: same name, usually the same font, drifted proportions and flourish.

    The forger writes slowly and carefully: a heavier, more even pen.

    Args:
        style: the genuine writer's style.
        rng: the random generator.
    """
    font = style.font
    if rng.random() < 0.25:  # the forger's own letter forms: a similar font
        font = str(rng.choice(SIMILAR_FONTS[font]))
    size = style.size * float(np.exp(rng.normal(0, 0.08)))
    if font != style.font:  # keep the imitation about as wide as the model
        size *= _text_width(style.font, style.text, 100, style.tracking, style.word_gap) / _text_width(
            font, style.text, 100, style.tracking, style.word_gap
        )
        size = float(np.clip(size, 40, 140))
    strokes = tuple(
        tuple(map(tuple, np.asarray(s) + rng.normal(0, 0.1, size=2) + _smooth_jitter(rng, len(s), 0.06)))
        for s in style.strokes
    )
    return replace(
        style,
        font=font,
        size=size,
        tracking=style.tracking + float(rng.normal(0, 0.03)) if not _is_script(font) else 0.0,
        word_gap=style.word_gap + float(rng.normal(0, 0.12)),
        slant=style.slant + float(rng.normal(0, 0.1)),
        x_scale=style.x_scale * float(np.exp(rng.normal(0, 0.08))),
        y_scale=style.y_scale * float(np.exp(rng.normal(0, 0.08))),
        rotation=style.rotation + float(rng.normal(0, 2.5)),
        pen=style.pen * float(rng.uniform(1.05, 1.5)),
        pressure=style.pressure * float(rng.uniform(0.2, 0.6)),
        ink=float(np.clip(style.ink + rng.normal(-10, 15), 0, 90)),
        strokes=strokes,
        shape_seed=int(rng.integers(2**31)),
        shape_amp=style.shape_amp * float(rng.uniform(0.7, 1.2)),
    )


# -------------------------------------------------------------------------------------------------------- rendering


def _curve(points: np.ndarray, step: float = 1.5) -> np.ndarray:
    """Centripetal-free (uniform) Catmull-Rom curve through ``points`` (``(N, 2)`` float), sampled every ~``step`` px.

    Returns:
        ``(M, 2)`` float32 points.
    """
    if len(points) < 2:
        return points.astype(np.float32)
    p = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        n = max(2, int(np.linalg.norm(p2 - p1) / step))
        t = np.linspace(0, 1, n, endpoint=False)[:, None]
        out.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    out.append(points[-1:])
    return np.vstack(out).astype(np.float32)


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], cell: float, amp: float, channels: int = 1
) -> np.ndarray:
    """A smooth random field: normal values on a grid of ``cell``-pixel cells, bicubic-upsampled to ``shape``.

    Returns:
        ``(H, W)`` float32 (``(H, W, channels)`` when ``channels > 1``) with standard deviation about ``amp``.
    """
    h, w = shape
    gh, gw = max(2, int(round(h / cell)) + 1), max(2, int(round(w / cell)) + 1)
    grid = (rng.standard_normal((gh, gw, channels)) * amp).astype(np.float32)
    return cv2.resize(grid if channels > 1 else grid[..., 0], (w, h), interpolation=cv2.INTER_CUBIC)


def _smooth_jitter(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """``(n, 2)`` offsets for the ``n`` points of a stroke, varying smoothly along it (4 anchors at most)."""
    k = min(n, 4)
    anchors = rng.normal(0, sigma, size=(k, 2))
    if k == n:
        return anchors
    t, ta = np.linspace(0, 1, n), np.linspace(0, 1, k)
    return np.column_stack([np.interp(t, ta, anchors[:, 0]), np.interp(t, ta, anchors[:, 1])])


@lru_cache(maxsize=32)
def _personal_field(seed: int, shape: tuple[int, int], size: float, amp: float) -> np.ndarray:
    """A hand's fixed deformation of letter shapes: ``(H, W, 2)`` float32 (dx, dy) pixels, about letter scale."""
    rng = np.random.default_rng(seed)
    field = _smooth_field(rng, shape, 0.45 * size, amp * size, 2)  # letter-scale idiosyncrasies
    field += _smooth_field(rng, shape, 1.5 * size, 0.5 * amp * size, 2)  # word-scale proportions
    field.setflags(write=False)
    return field


def _distance_field(
    style: WriterStyle, rng: np.random.Generator, stroke_jitter: float
) -> tuple[np.ndarray, tuple[float, float]]:
    """Distance (pixels) to the pen's centre line, with the font outline mixed in by ``style.contrast``.

    Returns:
        ``(H, W)`` float32 distance field such that ink = ``distance < pen / 2``, and the baseline origin (x, y).
    """
    size = int(round(style.size))
    g = _glyphs(style.font, style.text, size, round(style.tracking, 3), round(style.word_gap, 3))
    stretch = g.width / size / style.strokes_width if style.strokes_width > 0 else 1.0
    # Grow the glyph canvas where the style's strokes reach beyond it (the same for every sample of the style,
    # so that the hand's personal deformation field keeps its shape).
    h, w = g.skeleton.shape
    ox, oy = g.origin
    pad = (0, 0, 0, 0)  # top, bottom, left, right
    if style.strokes:
        allpts = np.vstack([np.asarray(s_, dtype=np.float64) for s_ in style.strokes]) * (stretch, 1.0) * size
        margin = 0.3 * size + style.pen
        pad = (
            int(max(0.0, margin - (oy + allpts[:, 1].min()))),
            int(max(0.0, oy + allpts[:, 1].max() + margin - h)),
            int(max(0.0, margin - (ox + allpts[:, 0].min()))),
            int(max(0.0, ox + allpts[:, 0].max() + margin - w)),
        )
    skel = cv2.copyMakeBorder(g.skeleton.astype(np.uint8), *pad, cv2.BORDER_CONSTANT, value=0)
    h, w = skel.shape
    ox, oy = ox + pad[2], oy + pad[0]
    shape_mask = None
    if style.contrast > 0:
        shape_mask = cv2.copyMakeBorder((g.sdf < 0).astype(np.uint8), *pad, cv2.BORDER_CONSTANT, value=0)
    for stroke in style.strokes:
        pts = np.asarray(stroke, dtype=np.float64) * (stretch, 1.0)
        pts += _smooth_jitter(rng, len(stroke), stroke_jitter) + rng.normal(0, stroke_jitter, size=2)
        xy = _curve(np.column_stack([ox + pts[:, 0] * size, oy + pts[:, 1] * size]))
        xy[:, 0] = np.clip(xy[:, 0], 1, w - 2)
        xy[:, 1] = np.clip(xy[:, 1], 1, h - 2)
        poly = np.round(xy).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(skel, [poly], False, 1, thickness=1, lineType=cv2.LINE_8)
        if shape_mask is not None:
            cv2.polylines(shape_mask, [poly], False, 1, thickness=max(1, round(style.pen)), lineType=cv2.LINE_8)
    dist = cv2.distanceTransform(1 - skel, cv2.DIST_L2, 3)
    if shape_mask is not None:
        sdf = cv2.distanceTransform(1 - shape_mask, cv2.DIST_L2, 3) - cv2.distanceTransform(shape_mask, cv2.DIST_L2, 3)
        dist = (1 - style.contrast) * dist + style.contrast * (sdf + style.pen / 2)
    return dist, (ox, oy)


def render_signature(
    style: WriterStyle,
    rng: np.random.Generator,
    forged: bool = False,
    forger: WriterStyle | None = None,
) -> np.ndarray:
    """Render one signature of ``style`` on scanned paper.

    Args:
        style: the (genuine) writer's style.
        rng: the random generator of this sample.
        forged: render a skilled forgery of ``style`` instead of a genuine sample.
        forger: the forger's hand (see ``forger_style``); drawn from ``rng`` when ``forged`` and not given.

    Returns:
        ``(H, W)`` uint8 grayscale image, dark ink (~0-90) on light paper (~215-255); some samples are quantised to
        16 grey levels or binarised, like CEDAR and BHSig scans. W is typically 300-900.
    """
    if forged:
        hand = forger if forger is not None else forger_style(style, rng)
        var = 1.0
    else:
        hand = style
        var = style.variability
    dist, (ox, oy) = _distance_field(hand, rng, stroke_jitter=(0.05 if forged else 0.035) * var)
    size = hand.size

    # Affine: proportions, slant, rotation, with per-sample jitter (about the text baseline origin).
    sx = hand.x_scale * math.exp(rng.normal(0, 0.035 * var))
    sy = hand.y_scale * math.exp(rng.normal(0, 0.035 * var))
    scale = math.exp(rng.normal(0, 0.05 * var))
    shear = hand.slant + rng.normal(0, 0.035 * var)
    angle = math.radians(hand.rotation + rng.normal(0, 1.5 * var))
    a = np.array([[sx, -shear * sy], [0.0, sy]]) * scale  # shear: points above the baseline (y < 0) move right
    rot = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    a = rot @ a
    h, w = dist.shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) - (ox, oy)
    fc = corners @ a.T
    lo, hi = fc.min(axis=0), fc.max(axis=0)
    out_w, out_h = int(math.ceil(hi[0] - lo[0])) + 2, int(math.ceil(hi[1] - lo[1])) + 2
    ainv = np.linalg.inv(a)

    xs = np.arange(out_w, dtype=np.float32)[None, :] + np.float32(lo[0])
    ys = np.arange(out_h, dtype=np.float32)[:, None] + np.float32(lo[1])
    # Smooth shape variation (strong for forgers), baseline drift, spacing drift.
    amp = (0.045 if forged else 0.028 * var) * size
    dxy = _smooth_field(rng, (out_h, out_w), 0.9 * size, amp, 2)
    dx, dy = dxy[..., 0], dxy[..., 1]
    drift = cv2.resize(
        (rng.standard_normal((1, max(2, out_w // int(1.5 * size) + 2))) * 0.04 * size * max(var, 0.8)).astype(
            np.float32
        ),
        (out_w, 1),
        interpolation=cv2.INTER_CUBIC,
    )
    dy += drift
    if forged:  # tremor: high-frequency small wobble of slow, careful drawing
        t_amp = rng.uniform(0.2, 1.0)
        cell = rng.uniform(5, 9)
        dxy += _smooth_field(rng, (out_h, out_w), cell, t_amp, 2)
    ux = xs + dx
    uy = ys + dy
    map_x = (ainv[0, 0] * ux + ainv[0, 1] * uy + ox).astype(np.float32)
    map_y = (ainv[1, 0] * ux + ainv[1, 1] * uy + oy).astype(np.float32)
    # The hand's personal deformation of the letter forms, fixed in text coordinates for all its samples.
    personal = _personal_field(hand.shape_seed, dist.shape, size, hand.shape_amp)
    shift = cv2.remap(personal, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    map_x += shift[..., 0]
    map_y += shift[..., 1]
    warped = cv2.remap(dist, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=99.0)

    # Pen: width with pressure variation; ink where the distance to the centre line is below half the width.
    pen = hand.pen * math.exp(rng.normal(0, 0.1))
    pen_field = pen * np.exp(_smooth_field(rng, (out_h, out_w), 0.7 * size, hand.pressure))
    alpha = np.clip(0.5 + np.maximum(pen_field, 1.5) / 2 - warped, 0.0, 1.0)

    if forged:
        _hesitate(alpha, rng, pen)

    # Crop to the ink plus margins drawn independently of genuine/forged.
    ys_i, xs_i = np.nonzero(alpha > 0.1)
    if len(xs_i) == 0:  # pragma: no cover - every style draws some text
        ys_i, xs_i = np.array([0, out_h - 1]), np.array([0, out_w - 1])
    m = rng.integers(6, 50, size=4)
    y0, y1 = ys_i.min() - m[0], ys_i.max() + 1 + m[1]
    x0, x1 = xs_i.min() - m[2], xs_i.max() + 1 + m[3]
    crop = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    sy0, sx0 = max(y0, 0), max(x0, 0)
    ey1, ex1 = min(y1, out_h), min(x1, out_w)
    crop[sy0 - y0 : ey1 - y0, sx0 - x0 : ex1 - x0] = alpha[sy0:ey1, sx0:ex1]
    darkness = np.clip(1 + _smooth_field(rng, crop.shape, 0.5 * size, 0.12), 0.6, 1.0)
    return _on_paper(crop * darkness, hand.ink, rng)


def _hesitate(alpha: np.ndarray, rng: np.random.Generator, pen: float) -> None:
    """Pen lifts (small gaps) and ink dots where the pen stopped, drawn in place on ``alpha`` (``(H, W)`` float32)."""
    ys, xs = np.nonzero(alpha > 0.9)
    if len(xs) == 0:
        return
    n_gaps = int(rng.integers(0, 4))
    n_dots = int(rng.integers(1, 5))
    idx = rng.choice(len(xs), size=n_gaps + n_dots, replace=len(xs) < n_gaps + n_dots)
    for k, i in enumerate(idx):
        c = (int(xs[i]), int(ys[i]))
        if k < n_gaps:
            cv2.circle(alpha, c, max(1, int(round(pen * rng.uniform(0.8, 1.4)))), 0.0, -1, cv2.LINE_AA)
        else:
            cv2.circle(alpha, c, max(1, int(round(pen * rng.uniform(0.6, 1.1)))), 1.0, -1, cv2.LINE_AA)


def _on_paper(alpha: np.ndarray, ink: float, rng: np.random.Generator) -> np.ndarray:
    """Composite ``alpha`` (``(H, W)`` float32 in [0, 1], 1 = full ink) on scanned paper.

    Returns:
        ``(H, W)`` uint8.
    """
    h, w = alpha.shape
    paper = float(rng.uniform(215, 252))
    bg = paper + _smooth_field(rng, (h, w), 60, float(rng.uniform(0, 3)))  # uneven lighting / paper tone
    grain = rng.standard_normal((h, w), dtype=np.float32)
    if rng.random() < 0.5:  # paper fibre: slightly correlated grain
        grain = cv2.GaussianBlur(grain, (0, 0), 1.0) * 2.0
    bg += grain * np.float32(rng.uniform(0.5, 3.0))
    ink_level = ink + rng.normal(0, 8)
    img = bg * (1 - alpha) + np.float32(ink_level) * alpha
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 0.8)))  # scanner optics
    mode = rng.random()
    if mode < 0.25:  # few grey levels, like CEDAR's 16-level scans (the grain dithers the paper)
        img += rng.standard_normal((h, w), dtype=np.float32) * np.float32(4.0)
        img = np.floor(img / 16) * 16 + 8
    elif mode < 0.4:  # near-binary scan, like BHSig
        img = np.where(img < paper - 0.35 * (paper - ink_level), 0.0, 255.0)
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------- corpus


def write_corpus(out: str | Path, writers: int, per_writer: int, forgeries: int, seed: int = 0) -> Path:
    """Write a synthetic per-writer corpus: ``OUT/<writer>/genuine/NN.png`` and ``OUT/<writer>/forged/NN.png``.

    Writer ``i`` (0-based, folder ``f"{i + 1:03d}"``) is drawn from ``default_rng([seed, i])``; its genuine sample
    ``j`` from ``default_rng([seed, i, 0, j])`` and forgery ``j`` from ``default_rng([seed, i, 1, j])``. Each writer
    has 1-3 forgers, used in turn.

    Args:
        out: the corpus folder; created if missing, must not already hold files.
        writers: number of writers (>= 1).
        per_writer: genuine samples per writer (>= 1).
        forgeries: skilled forgeries per writer (>= 0).
        seed: the seed; the same seed writes byte-identical files.

    Returns:
        The corpus folder.

    Raises:
        InputError: a count is out of range or ``out`` is not an empty folder.
    """
    if writers < 1 or per_writer < 1 or forgeries < 0:
        raise InputError(
            f"need writers >= 1, per-writer >= 1, forgeries >= 0 (got {writers}, {per_writer}, {forgeries})"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output exists and is not an empty folder: {out}")
    wpad = max(3, len(str(writers)))
    fpad = max(2, len(str(max(per_writer, forgeries))))
    for i in range(writers):
        rng = np.random.default_rng([seed, i])
        style = synth_writer_style(rng)
        forgers = [forger_style(style, rng) for _ in range(int(rng.integers(1, 4)))]
        wdir = out / str(i + 1).zfill(wpad)
        for kind, n in (("genuine", per_writer), ("forged", forgeries)):
            if n:
                (wdir / kind).mkdir(parents=True, exist_ok=True)
            for j in range(n):
                srng = np.random.default_rng([seed, i, int(kind == "forged"), j])
                img = render_signature(style, srng, forged=kind == "forged", forger=forgers[j % len(forgers)])
                ok, buf = cv2.imencode(".png", img)
                assert ok
                buf.tofile(str(wdir / kind / f"{str(j + 1).zfill(fpad)}.png"))
        log.debug("writer %s: %r in %s", wdir.name, style.name, style.font)
    return out
