"""The built-in ``synthetic`` dataset: procedurally drawn anime-style faces.

No download is needed and every face is a pure function of ``(seed, index)``: each image
draws from its own ``random.Random`` seeded through ``numpy.random.SeedSequence``, never
from global RNG state, so results do not depend on worker count or call order. The random
draws do not depend on ``size`` either, so the same face is drawn at 32, 64 or 128 px.

Faces are drawn with Pillow polygons at a supersampled resolution and box-filtered down
(``Image.reduce``), which anti-aliases the hard polygon edges cheaply. All geometry lives
in "frame units" (the image is 1 x 1, origin at its centre, y down) and passes through one
affine transform, so the random shift / scale / tilt of a head costs nothing extra.
"""

from __future__ import annotations

import colorsys
import math
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from animegan.data.workers import default_workers, pool_context

__all__ = ["draw_face", "render_faces"]

RGB = tuple[int, int, int]

# Palettes, weighted towards what anime face crops show: pale skin, dark or vivid hair.
_SKIN: list[RGB] = [(255, 231, 214), (252, 220, 198), (246, 208, 182), (255, 238, 228),
                    (236, 192, 160), (214, 164, 126), (170, 118, 86)]
_SKIN_W = [5, 5, 4, 3, 2, 1, 1]
# Hair: black, browns, blonde, platinum, red, orange, pink, blues, silver, purples, green, teal.
_HAIR: list[RGB] = [(38, 32, 44), (72, 46, 36), (122, 78, 48), (176, 126, 74),
                    (238, 206, 120), (242, 232, 204), (196, 48, 56), (232, 124, 56),
                    (244, 150, 190), (64, 98, 196), (138, 192, 240), (192, 196, 212),
                    (118, 72, 172), (184, 152, 224), (72, 160, 104), (60, 158, 168)]
_HAIR_W = [6, 5, 5, 3, 3, 1, 2, 1, 3, 2, 2, 2, 2, 1, 1, 1]
_ACCENT: list[RGB] = [(220, 40, 60), (250, 120, 170), (60, 110, 230), (250, 250, 250),
                      (40, 40, 50), (250, 200, 60), (120, 200, 120), (150, 90, 210)]


def _rgb(values) -> RGB:
    r, g, b = (max(0, min(255, round(v))) for v in values)
    return (r, g, b)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return _rgb(x + (y - x) * t for x, y in zip(a, b))


def _shade(c: RGB, f: float) -> RGB:
    return _rgb(x * f for x in c)


def _jitter(r: random.Random, c: RGB, amount: int) -> RGB:
    return _rgb(x + r.randint(-amount, amount) for x in c)


def _hsv(h: float, s: float, v: float) -> RGB:
    return _rgb(x * 255 for x in colorsys.hsv_to_rgb(h % 1.0, s, v))


# Unit circle sampled once; every ellipse is a transformed polygon (so it can be tilted).
_CIRCLE = [(math.cos(2 * math.pi * k / 32), math.sin(2 * math.pi * k / 32)) for k in range(32)]


class _Pen:
    """ImageDraw wrapper taking frame-unit coordinates through a fixed affine transform."""

    def __init__(self, img: Image.Image, dx: float, dy: float, scale: float, angle: float):
        self.draw = ImageDraw.Draw(img)
        side = img.width
        k = side * scale
        c, s = math.cos(angle), math.sin(angle)
        self.m = (k * c, -k * s, side * (0.5 + dx), k * s, k * c, side * (0.5 + dy))
        self.px = k  # pixels per frame unit, for line widths

    def _pts(self, xy):
        a, b, tx, c, d, ty = self.m
        return [(a * x + b * y + tx, c * x + d * y + ty) for x, y in xy]

    def _w(self, width: float) -> int:
        return max(1, round(width * self.px))

    def poly(self, xy, fill=None, outline=None, width=0.006):
        self.draw.polygon(self._pts(xy), fill=fill, outline=outline,
                          width=self._w(width) if outline else 1)

    def ellipse(self, x, y, rx, ry, fill=None, outline=None, width=0.006):
        self.poly([(x + rx * c, y + ry * s) for c, s in _CIRCLE], fill, outline, width)

    def line(self, xy, fill, width):
        self.draw.line(self._pts(xy), fill=fill, width=self._w(width), joint="curve")


def _rng(seed: int, index: int) -> random.Random:
    # SeedSequence mixes (seed, index) well, so neighbouring indices are unrelated faces.
    state = np.random.SeedSequence([seed % 2**64, index]).generate_state(2, np.uint64)
    return random.Random(int(state[0]) << 64 | int(state[1]))


def _background(r: random.Random, side: int) -> Image.Image:
    top = _hsv(r.random(), r.uniform(0.05, 0.55), r.uniform(0.55, 1.0))
    if r.random() < 0.4:
        return Image.new("RGB", (side, side), top)
    other = _hsv(r.random(), r.uniform(0.1, 0.6), r.uniform(0.4, 1.0))
    bottom = _mix(top, other, r.uniform(0.4, 1.0))  # simple vertical gradient
    t = np.linspace(0.0, 1.0, side, dtype=np.float32)[:, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    # A 1-pixel-wide column stretched sideways is much cheaper than a full numpy image.
    column = Image.fromarray(col.astype(np.uint8)[:, None, :], "RGB")
    return column.resize((side, side), Image.Resampling.NEAREST)


@dataclass
class _Look:
    """The per-face traits that several drawing layers share."""

    skin: RGB
    skin_dark: RGB
    hair: RGB
    hair_dark: RGB
    fw: float  # half width of the face
    chin: float  # y of the chin tip
    crown: float  # hair volume above the head: flat to puffy
    length: str  # short / medium / long hair
    accessory: str
    eye_y: float
    ex: float  # x offset of each eye from the centre line


def _sample_look(r: random.Random) -> _Look:
    skin = _jitter(r, r.choices(_SKIN, _SKIN_W)[0], 6)
    hair = _jitter(r, r.choices(_HAIR, _HAIR_W)[0], 14)
    fw = r.uniform(0.24, 0.28)
    return _Look(
        skin=skin, skin_dark=_mix(skin, (120, 60, 50), 0.45),
        hair=hair, hair_dark=_shade(hair, 0.55),
        fw=fw, chin=r.uniform(0.37, 0.42), crown=r.uniform(0.33, 0.4),
        length=r.choices(["short", "medium", "long"], [3, 3, 4])[0],
        accessory=r.choices(["none", "ribbon", "clip", "glasses", "cat_ears", "headband"],
                            [10, 2, 2, 1.5, 1.5, 1.5])[0],
        eye_y=r.uniform(0.07, 0.12), ex=fw * r.uniform(0.47, 0.53))


def _draw_back(p: _Pen, r: random.Random, f: _Look):
    """Everything behind the face: back hair, shoulders, neck, cat ears, skull."""
    back = _shade(f.hair, 0.82)  # hair further back is a shade darker
    if f.length != "short":  # long hair falls behind the shoulders, medium ends above them
        end = 0.7 if f.length == "long" else r.uniform(0.25, 0.4)
        w = r.uniform(0.42, 0.48)
        zig = [(x, end + (0.05 if k % 2 else 0.0)) for k, x in enumerate(np.linspace(-w, w, 9))]
        p.poly([(-0.36, -0.2), (-w, 0.1)] + zig + [(w, 0.1), (0.36, -0.2)],
               fill=back, outline=f.hair_dark)
    cloth = r.choice(_ACCENT + [(70, 80, 110), (240, 240, 240)])
    p.ellipse(0.0, 0.78, 0.4, 0.3, fill=cloth, outline=_shade(cloth, 0.6))
    p.poly([(-0.08, 0.2), (0.08, 0.2), (0.09, 0.52), (-0.09, 0.52)], fill=f.skin_dark)  # neck
    if f.length == "short":  # a rounded bob
        p.ellipse(0.0, 0.02, 0.4, 0.3, fill=back, outline=f.hair_dark)
    if f.accessory == "cat_ears":  # before the skull, so it hides the ear bases
        _draw_accessory(p, r, f)
    p.ellipse(0.0, -0.08, 0.37, f.crown, fill=f.hair)  # skull volume behind the fringe
    # Face: a forehead half-ellipse plus a jaw that tapers to a pointed chin.
    k_jaw = r.uniform(1.6, 2.6)  # lower -> rounder jaw
    jaw = [(f.fw * (1 - u**k_jaw), 0.05 + u * (f.chin - 0.05)) for u in np.linspace(0, 1, 11)]
    forehead = [(f.fw * c, 0.05 + 0.32 * s) for c, s in _CIRCLE[16:]]
    p.poly(forehead + jaw + [(-x, y) for x, y in jaw[-2::-1]], fill=f.skin, outline=f.skin_dark)


def _draw_eye(p: _Pen, r: random.Random, ex, ey, ew, eh, side, iris: RGB, lash: RGB, light):
    """One big anime eye; side is -1 for the image-left eye, +1 for the right."""
    white = (255, 255, 255)
    p.ellipse(ex, ey, ew, eh, fill=white)
    ix, iy = ex - side * ew * 0.06, ey + eh * 0.06  # irises look slightly inwards
    irx, iry = ew * 0.66, eh * 0.86
    # Iris: dark rim and upper shadow, main colour, light lower crescent, then the pupil.
    p.ellipse(ix, iy, irx, iry, fill=_shade(iris, 0.5))
    p.ellipse(ix, iy + iry * 0.18, irx * 0.82, iry * 0.76, fill=iris)
    p.ellipse(ix, iy + iry * 0.55, irx * 0.6, iry * 0.3, fill=_mix(iris, white, 0.45))
    p.ellipse(ix, iy + iry * 0.05, irx * 0.42, iry * 0.5, fill=_shade(iris, 0.18))
    # Specular highlights: same light side for both eyes, a big dot and a small one.
    p.ellipse(ix + light * irx * 0.4, iy - iry * 0.38, ew * 0.24, ew * 0.22, fill=white)
    p.ellipse(ix - light * irx * 0.35, iy + iry * 0.42, ew * 0.1, ew * 0.1, fill=white)
    # Upper lash line: a thick arc hugging the top of the eye, thickest at the outer corner,
    # ending in a small outward flick.
    top, under = [], []
    for k in range(13):
        u = -1.0 + k / 6.0  # -1 inner corner .. +1 outer corner
        x = ex + side * u * ew * 1.04
        yc = ey - eh * 1.02 * math.sqrt(max(0.0, 1.0 - 0.92 * u * u)) + eh * 0.05 * u
        top.append((x, yc - eh * (0.10 + 0.16 * (u + 1.0))))
        under.append((x, yc + eh * 0.06))
    flick = (ex + side * ew * 1.32, ey - eh * (0.1 + 0.4 * r.random()))
    p.poly(top + [flick] + under[::-1], fill=lash)
    lower = [(ex + side * u * ew, ey + eh * 0.98 * math.sqrt(1 - u * u))
             for u in (0.2, 0.5, 0.75, 0.92)]
    p.line(lower, lash, eh * 0.07)  # short lower lash at the outer corner


def _draw_features(p: _Pen, r: random.Random, f: _Look):
    """Blush, eyes, nose and mouth."""
    ew, eh = r.uniform(0.07, 0.085), r.uniform(0.085, 0.11)
    if r.random() < 0.5:  # blush marks under the eyes
        blush = _mix(f.skin, (255, 110, 130), r.uniform(0.25, 0.45))
        for d in (-1, 1):
            p.ellipse(d * (f.ex + 0.02), f.eye_y + 0.12, 0.06, 0.025, fill=blush)
    iris = _hsv(r.random(), r.uniform(0.45, 0.9), r.uniform(0.45, 0.9))
    lash = _mix(f.hair_dark, (20, 15, 20), 0.7)
    light = r.choice((-1, 1))
    for d in (-1, 1):
        _draw_eye(p, r, d * f.ex, f.eye_y, ew, eh, d, iris, lash, light)
    nose_y = f.eye_y + r.uniform(0.12, 0.15)
    p.line([(0.005 * light, nose_y), (-0.008 * light, nose_y + 0.015)], f.skin_dark, 0.008)
    mouth_y = (nose_y + f.chin) / 2 + 0.01
    mouth = r.choice(["line", "smile", "open"])
    mw = r.uniform(0.025, 0.045)
    if mouth == "open":
        p.poly([(-mw, mouth_y), (mw, mouth_y), (mw * 0.5, mouth_y + mw * 0.8),
                (-mw * 0.5, mouth_y + mw * 0.8)], fill=(150, 50, 60), outline=(100, 30, 40))
        p.ellipse(0.0, mouth_y + mw * 0.6, mw * 0.45, mw * 0.2, fill=(230, 120, 130))
    else:
        bend = 0.014 if mouth == "smile" else 0.003
        p.line([(x * mw, mouth_y + bend * (1 - x * x)) for x in (-1, -0.5, 0, 0.5, 1)],
               (110, 50, 50), 0.009)
    brow_y = f.eye_y - eh - r.uniform(0.03, 0.06)
    return brow_y, ew


def _draw_hair_front(p: _Pen, r: random.Random, f: _Look):
    """Bangs (a fringe of pointed strands) and the two side locks framing the face."""
    n = r.randint(4, 7)
    sweep = r.uniform(-0.06, 0.06)
    parted = r.random() < 0.25
    arc = [(0.37 * math.cos(a), -0.08 + f.crown * math.sin(a))
           for a in (math.pi * (1.0 + k / 14.0) for k in range(15))]
    fringe = []
    for k in range(n + 1):  # recess, tip, recess, ... from right to left
        x = 0.33 - 0.66 * k / n
        fringe.append((x, r.uniform(-0.16, -0.08)))
        if k < n:
            mid = x - 0.33 / n
            central = parted and abs(mid) < 0.66 / n  # the strand at a parting stays short
            fringe.append((mid + sweep, r.uniform(*((-0.05, -0.02) if central else (-0.03, 0.05)))))
    if parted:  # pull the middle recess up to show a central parting
        fringe = [(x, y - 0.12 if abs(x) < 0.1 and y < -0.07 else y) for x, y in fringe]
    # Cel-shaded shadow the fringe casts on the forehead, kept inside the face outline.
    shadow = _mix(f.skin, f.skin_dark, 0.3)
    p.poly([(max(-f.fw, min(f.fw, x)), y + 0.035) for x, y in fringe]
           + [(-f.fw, -0.2), (f.fw, -0.2)], fill=shadow)
    p.poly([(-0.37, 0.0)] + arc + [(0.37, 0.0)] + fringe, fill=f.hair, outline=f.hair_dark)
    for x, y in fringe[1::2]:  # strand lines give the fringe some texture
        p.line([(x * 0.4, 0.02 - f.crown), (x * 0.9, y - 0.05)], f.hair_dark, 0.005)
    # Light "angel ring" sheen across the crown.
    ring = [(0.28 * math.cos(a), -0.1 + (f.crown - 0.13) * math.sin(a))
            for a in (math.pi * (1.2 + 0.6 * k / 8.0) for k in range(9))]
    p.line(ring, _mix(f.hair, (255, 255, 255), 0.35), 0.022)
    lock_len = (0.08, 0.22) if f.length == "short" else (0.2, 0.45)
    fw = f.fw
    for s in (-1, 1):  # side locks over the cheeks: a long outer and a shorter inner strand
        tip_y = r.uniform(*lock_len)
        lock = [(s * 0.37, -0.12), (s * (fw + 0.09), 0.12), (s * (fw + 0.03), tip_y),
                (s * fw, tip_y - 0.09), (s * (fw - 0.04), tip_y - 0.06),
                (s * (fw - 0.045), 0.0), (s * 0.28, -0.14)]
        p.poly(lock, fill=f.hair, outline=f.hair_dark)


def _draw_accessory(p: _Pen, r: random.Random, f: _Look):
    color = r.choice(_ACCENT)
    dark = _shade(color, 0.55)
    s = r.choice((-1, 1))
    if f.accessory == "ribbon":
        cx, cy, w = s * 0.26, 0.01 - f.crown, r.uniform(0.09, 0.13)
        for d in (-1, 1):
            p.poly([(cx, cy), (cx + d * w, cy - w * 0.7), (cx + d * w * 1.1, cy + w * 0.6)],
                   fill=color, outline=dark, width=0.005)
        p.ellipse(cx, cy, w * 0.3, w * 0.3, fill=color, outline=dark, width=0.005)
    elif f.accessory == "clip":  # two crossed bars pinned on the fringe
        cx, cy = s * r.uniform(0.15, 0.24), r.uniform(-0.2, -0.1)
        for d in (-1, 1):
            p.poly([(cx - 0.05, cy + d * 0.03 - 0.008), (cx + 0.05, cy - d * 0.03 - 0.008),
                    (cx + 0.05, cy - d * 0.03 + 0.008), (cx - 0.05, cy + d * 0.03 + 0.008)],
                   fill=color)
    elif f.accessory == "glasses":
        frame = r.choice([(30, 30, 40), (150, 40, 50), (90, 60, 40)])
        for d in (-1, 1):
            p.ellipse(d * f.ex, f.eye_y + 0.01, 0.115, 0.095, outline=frame, width=0.012)
        p.line([(-f.ex + 0.115, f.eye_y), (f.ex - 0.115, f.eye_y)], frame, 0.012)
    elif f.accessory == "cat_ears":
        for d in (-1, 1):
            p.poly([(d * 0.1, -0.36), (d * 0.36, -0.58), (d * 0.34, -0.22)], fill=f.hair,
                   outline=f.hair_dark)
            p.poly([(d * 0.17, -0.36), (d * 0.33, -0.5), (d * 0.31, -0.3)],
                   fill=_mix(f.hair, (255, 170, 190), 0.55))
    elif f.accessory == "headband":
        outer = [(0.38 * math.cos(a), -0.08 + (f.crown + 0.01) * math.sin(a))
                 for a in (math.pi * (1.12 + 0.76 * k / 12.0) for k in range(13))]
        inner = [(x * 0.86, -0.08 + (y + 0.08) * 0.86) for x, y in outer]
        p.poly(outer + inner[::-1], fill=color, outline=dark, width=0.005)


def draw_face(seed: int, index: int, size: int) -> Image.Image:
    """One RGB face, size x size, identical for the same (seed, index, size)."""
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    r = _rng(seed, index)
    ss = max(2, min(4, math.ceil(256 / size)))  # ~256 px canvas: enough detail, still fast
    img = _background(r, size * ss)
    # Tight crop like real anime face datasets: the head fills ~85-95% of the frame, with a
    # little random shift, scale and tilt.
    p = _Pen(img, r.uniform(-0.035, 0.035), r.uniform(-0.04, 0.01), r.uniform(0.98, 1.14),
             math.radians(r.uniform(-9.0, 9.0)))
    look = _sample_look(r)
    _draw_back(p, r, look)  # painter's order: back to front
    brow_y, ew = _draw_features(p, r, look)
    _draw_hair_front(p, r, look)
    brow = _shade(look.hair_dark, 0.8)
    for d in (-1, 1):  # eyebrows stay visible through the fringe, as anime draws them
        p.line([(d * (look.ex - ew * 0.7), brow_y + 0.01), (d * look.ex, brow_y - 0.008),
                (d * (look.ex + ew * 0.9), brow_y + 0.005)], brow, 0.01)
    if look.accessory not in ("none", "cat_ears"):
        _draw_accessory(p, r, look)
    return img.reduce(ss)  # box-filter downsample = anti-aliasing


def _render_chunk(args: tuple[int, int, int, int]) -> np.ndarray:
    seed, start, stop, size = args
    out = np.empty((stop - start, size, size, 3), np.uint8)
    for i in range(start, stop):
        out[i - start] = np.asarray(draw_face(seed, i, size))
    return out


def render_faces(count: int, size: int, seed: int = 0, workers: int = 0) -> torch.Tensor:
    """uint8 tensor [count, 3, size, size] of faces 0..count-1.

    ``workers=0`` picks automatically: one process for small counts (a pool costs more than
    it saves), otherwise one per available CPU (at most 8). ``workers>1`` uses a process
    pool ('fork' where available, else 'spawn'). The result never depends on ``workers``.
    """
    if count < 0 or size < 16:
        raise ValueError(f"need count >= 0 and size >= 16, got count={count}, size={size}")
    if workers <= 0:
        workers = 1 if count < 256 else default_workers()
    workers = max(1, min(workers, count))
    if workers == 1:
        arr = _render_chunk((seed, 0, count, size))
    else:
        # Several chunks per worker balance the load; chunks are contiguous index ranges
        # and concatenated in order, so the output matches the single-process result.
        n_chunks = workers * 4
        bounds = [count * k // n_chunks for k in range(n_chunks + 1)]
        jobs = [(seed, a, b, size) for a, b in zip(bounds, bounds[1:]) if b > a]
        with ProcessPoolExecutor(workers, mp_context=pool_context()) as ex:
            arr = np.concatenate(list(ex.map(_render_chunk, jobs)))
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
