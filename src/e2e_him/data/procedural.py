"""Procedural people for the synthetic data: articulated silhouettes, hair strands, clothes-like textures.

A person is a list of `Shape`s in image pixel coordinates (tapered limbs, polygons, ellipses, hair strands),
each labelled with the part it shows (skin, hair, shirt, sleeves, trousers, shoes). `rasterise` draws the
labels at `supersample` times the resolution and area-averages the covered sub-pixels, so the matte has
anti-aliased edges and one-sub-pixel-wide strands become semi-transparent wisps; a small Gaussian blur adds
defocus. `paint` turns the part labels into a textured, shaded foreground colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

# Part labels (0 = none); where parts meet inside one output pixel the larger label gives the colour.
SKIN, SHOES, PANTS, SLEEVE, SHIRT, HAIR = 1, 2, 3, 4, 5, 6
NUM_PARTS = 7
SHIFT = 3  # sub-pixel bits of the OpenCV drawing calls

SKIN_TONES = np.array(
    [[255, 222, 196], [240, 192, 150], [224, 172, 125], [198, 134, 90], [150, 95, 60], [95, 60, 40]],
    np.float32,
)
HAIR_COLOURS = np.array(
    [[25, 20, 18], [60, 40, 28], [110, 72, 45], [200, 165, 105], [150, 70, 35], [175, 170, 165]], np.float32
)
PANTS_COLOURS = np.array(
    [[45, 65, 110], [70, 95, 140], [30, 30, 35], [165, 145, 105], [105, 105, 110], [90, 60, 45]], np.float32
)


@dataclass
class Shape:
    """One filled primitive of a person in image pixel coordinates (x, y); `points` also bound its extent.

    kind "limb": a tapered capsule; points (8, 2) = the side quad (4), the two ends (2) and the two cap
    tips (2); size (r0, r1) = the radii at the ends.
    kind "poly": points (P, 2), a filled polygon (may be concave).
    kind "ellipse": points (3, 2) = centre and two corners of a bounding square; size (ax, ay, angle_deg,
    start_deg, end_deg), a pie when the angles do not span 360 degrees.
    kind "strands": points (S, P, 2), S open polylines; size (thickness,) in sub-pixels.
    """

    kind: str
    label: int
    points: np.ndarray
    size: tuple = ()


def _limb(label: int, p: np.ndarray, q: np.ndarray, w0: float, w1: float) -> Shape:
    """A capsule from p to q, `w0` wide at p and `w1` wide at q."""
    (px, py), (qx, qy), r0, r1 = p.tolist(), q.tolist(), w0 / 2, w1 / 2
    length = max(math.hypot(qx - px, qy - py), 1e-6)
    dx, dy = (qx - px) / length, (qy - py) / length  # unit direction; the normal is (-dy, dx)
    pts = [(px - dy * r0, py + dx * r0), (qx - dy * r1, qy + dx * r1), (qx + dy * r1, qy - dx * r1)]
    pts += [
        (px + dy * r0, py - dx * r0),
        (px, py),
        (qx, qy),
        (px - dx * r0, py - dy * r0),
        (qx + dx * r1, qy + dy * r1),
    ]
    return Shape("limb", label, np.array(pts), (r0, r1))


def _ellipse(label: int, c: np.ndarray, ax: float, ay: float, angle=0.0, start=0.0, end=360.0) -> Shape:
    r = max(ax, ay)
    return Shape("ellipse", label, np.stack([c, c - r, c + r]), (ax, ay, angle, start, end))


@dataclass
class Look:
    """Colours and patterns of one person: `colours` (NUM_PARTS, 3) RGB per label (row 0 = fallback)."""

    colours: np.ndarray
    pattern: str = "solid"  # solid | stripes | checks | noise
    second: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    period: float = 8.0
    angle: float = 0.0
    light: float = 0.0  # direction of the light (radians)
    blur: float = 0.0  # Gaussian sigma of the matte (defocus), pixels


def _dir(angle: float) -> np.ndarray:
    """Unit vector at `angle` radians from straight down, positive towards +x."""
    return np.array([math.sin(angle), math.cos(angle)])


def _arm(rng, side: int, shoulder: np.ndarray, u: float, sleeve: int, fore: int) -> list[Shape]:
    """Upper arm, forearm and hand from `shoulder`; side +1 / -1 mirrors the angles."""
    r = rng.random()
    a1 = np.deg2rad(
        rng.uniform(4, 40) if r < 0.65 else rng.uniform(40, 110) if r < 0.88 else rng.uniform(110, 165)
    )
    a2 = a1 + np.deg2rad(rng.uniform(0, 120)) * rng.choice([-1, 1]) * (rng.random() < 0.7)
    elbow = shoulder + _dir(side * a1) * 1.45 * u
    wrist = elbow + _dir(side * a2) * 1.3 * u
    hand = wrist + _dir(side * a2) * 0.28 * u
    return [
        _limb(sleeve, shoulder, elbow, 0.54 * u, 0.42 * u),
        _limb(fore, elbow, wrist, 0.4 * u, 0.3 * u),
        _ellipse(SKIN, hand, 0.19 * u, 0.3 * u, -np.rad2deg(side * a2)),
    ]


def _legs(rng, hips: np.ndarray, u: float, leg: float, thigh_label: int, shin_label: int) -> list[Shape]:
    """Two legs from the hip joints (2, 2) with feet; `leg` = hip-to-sole length."""
    stride = np.deg2rad(rng.uniform(8, 28)) if rng.random() < 0.4 else 0.0
    facing = rng.choice([-1, 0, 1], p=[0.3, 0.4, 0.3])
    shapes = []
    for i, side in enumerate((-1, 1)):
        hip_a = side * np.deg2rad(rng.uniform(0, 10)) + (stride if i == 0 else -stride) * (facing != 0)
        knee_a = hip_a + np.deg2rad(rng.uniform(0, 25)) * -(facing if facing else side)
        knee = hips[i] + _dir(hip_a) * 0.5 * (leg - 0.2 * u)
        ankle = knee + _dir(knee_a) * 0.5 * (leg - 0.2 * u)
        toe = ankle + (np.array([facing * 0.8, 0.18]) if facing else np.array([side * 0.22, 0.22])) * u
        shapes += [
            _limb(thigh_label, hips[i], knee, 0.82 * u, 0.56 * u),
            _limb(shin_label, knee, ankle, 0.54 * u, 0.34 * u),
            _limb(SHOES, ankle, toe, 0.36 * u, 0.3 * u),
        ]
    return shapes


def _strands(
    rng, start: np.ndarray, heading: np.ndarray, length: float, gravity: float, curl: float
) -> Shape:
    """Wavy hair strands: polylines from `start` (n, 2) setting off at `heading` (n,) (radians, atan2(dy, dx)
    with y down), up to `length` pixels long, bending at random by `curl` and drooping by `gravity`."""
    n, steps = len(start), 6
    bend = rng.normal(0, curl, n)
    step = rng.uniform(0.35, 1.0, n)[:, None] * (length / steps)
    pts = [start]
    for _ in range(steps):
        heading = heading + bend + rng.normal(0, curl * 0.5, n)
        heading = heading + gravity * ((np.pi / 2 - heading + np.pi) % (2 * np.pi) - np.pi)  # turn to +y
        pts.append(pts[-1] + step * np.stack([np.cos(heading), np.sin(heading)], -1))
    return Shape("strands", HAIR, np.stack(pts, 1), (1,))


def _hair(
    rng, head: np.ndarray, hx: float, hy: float, u: float, strand_prob: float
) -> tuple[list, list, list]:
    """(shapes behind the body, behind the head, over the head): long hair, front locks, cap, bun, strands."""
    style = rng.choice(["short", "long", "bun", "bald"], p=[0.45, 0.4, 0.1, 0.05])
    back, behind, over = [], [], []
    ax, ay = hx * 1.1, hy * 1.08
    cap_c = head - np.array([0, 0.06 * u])
    strands = style != "bald" and rng.random() < strand_prob
    # the strands have their own generator: the rest of the person does not depend on them
    srng = np.random.default_rng(rng.integers(2**63))
    if style == "long":  # a mass behind the body, locks falling over the shoulders
        drop = rng.uniform(0.9, 2.6) * u
        spread = rng.uniform(0.6, 0.95) * u
        xs = np.linspace(-spread, spread, 7)
        bottom = np.stack([xs, drop + rng.uniform(-0.25, 0.1, 7) * u], -1)  # left to right, ragged
        side = np.array([[-ax, -0.1 * u], [-spread * 0.95, 0.5 * u]])  # left side, downwards
        back.append(
            Shape("poly", HAIR, np.concatenate([[[0, -ay]], side, bottom, side[::-1] * [-1, 1]]) + head)
        )
        for sx in (-1, 1):
            if rng.random() < 0.6:
                end = head + np.array([sx * (ax + rng.uniform(-0.1, 0.2) * u), drop * rng.uniform(0.6, 0.95)])
                root = head + np.array([sx * ax * 0.9, 0.05 * u])
                behind.append(_limb(HAIR, root, end, 0.3 * u, 0.2 * u))
        if strands:  # loose ends around the mass
            n = int(srng.integers(30, 80))
            phi = srng.uniform(0.1, np.pi - 0.1, n)
            start = head + np.stack(
                [spread * np.cos(phi), drop * np.sin(phi) * srng.uniform(0.6, 1.0, n)], -1
            )
            back.append(_strands(srng, start, phi * 0.4 + np.pi * 0.3, 0.8 * u, 0.3, 0.08))
    if style == "bun":
        over.append(_ellipse(HAIR, cap_c - [0, ay * 0.95], 0.42 * u, 0.36 * u))
    if style != "bald":
        fringe = rng.uniform(-20, 25)
        over.append(_ellipse(HAIR, cap_c, ax, ay, 0, 180 - fringe, 360 + fringe))
    if strands:  # combed from the crown down both sides, a few fly-aways
        n = int(srng.integers(30, 90))
        phi = srng.uniform(np.pi * 1.0, np.pi * 2.0, n)  # upper half of the cap (y down)
        start = cap_c + np.stack([ax * np.cos(phi), ay * np.sin(phi)], -1) * srng.uniform(0.85, 1.02, (n, 1))
        tangent = np.arctan2(ay * np.cos(phi), -ax * np.sin(phi))  # direction of increasing phi
        heading = np.where(phi < 1.5 * np.pi, tangent + np.pi, tangent) + srng.normal(0.0, 0.25, n)
        heading += np.where(phi < 1.5 * np.pi, 0.3, -0.3)  # lifted a little off the head
        fly = srng.random(n) < 0.15
        heading[fly] = phi[fly] + srng.normal(0, 0.4, fly.sum())
        # behind the head: the face hides the roots
        behind.append(_strands(srng, start, heading, srng.uniform(0.5, 1.1) * u, 0.15, 0.1))
    return back, behind, over


def build_person(
    rng: np.random.Generator, height: float, strand_prob: float = 0.5
) -> tuple[list[Shape], Look]:
    """A random articulated person `height` pixels tall (head top to soles, standing), pelvis at (0, 0).

    Proportions are drawn in head units (6.3 to 8 heads tall); arms, legs and the spine get random joint
    angles; clothes (shirt with long / short / no sleeves, trousers, shorts or a dress) and the hair style
    decide which part label each shape carries.
    """
    heads = rng.uniform(6.3, 8.0)
    u = height / heads
    leg = (heads - 4.0) * u
    lean = rng.normal(0, 0.06)
    rot = np.array([[math.cos(lean), -math.sin(lean)], [math.sin(lean), math.cos(lean)]]) * u

    def body(*xy: float) -> np.ndarray:  # torso frame (head units, pelvis at 0, y down) -> pixels: (P, 2)
        return np.reshape(xy, (-1, 2)) @ rot.T

    # half widths of the shoulders (narrower when the person turns), hips and waist
    sw = rng.uniform(0.8, 1.1) * (1.0 if rng.random() < 0.5 else rng.uniform(0.65, 1.0))
    hw = rng.uniform(0.55, 0.8)
    waist = rng.uniform(0.62, 0.8)
    neck = body(0, -2.75)[0]
    shoulders = body(-sw, -2.45, sw, -2.45)
    head = neck + _dir(np.pi + rng.normal(0, 0.08)) * 0.72 * u
    hx, hy = rng.uniform(0.37, 0.44) * u, 0.53 * u

    sleeves = rng.choice(["long", "short", "none"], p=[0.45, 0.4, 0.15])
    bottoms = rng.choice(["trousers", "shorts", "dress"], p=[0.6, 0.2, 0.2])
    fore = SLEEVE if sleeves == "long" else SKIN
    upper = SKIN if sleeves == "none" else SLEEVE
    shin = PANTS if bottoms == "trousers" else SKIN
    thigh = SKIN if bottoms == "dress" and rng.random() < 0.5 else PANTS

    hair_back, hair_behind, hair_over = _hair(rng, head, hx, hy, u, strand_prob)
    arms = [_arm(rng, side, sh, u, upper, fore) for side, sh in zip((-1, 1), shoulders)]
    back = int(rng.integers(0, 3))  # 0, 1: that arm is behind the body; 2: both in front
    shapes = hair_back + (arms[back] if back < 2 else [])
    shapes += _legs(rng, body(-hw * 0.55, 0.15, hw * 0.55, 0.15), u, leg, thigh, shin)
    shapes.append(Shape("poly", PANTS, body(-0.72, -0.9, 0.72, -0.9, hw, 0.3, -hw, 0.3)))
    if bottoms == "dress":
        hem, flare = rng.uniform(1.3, 2.4), hw + rng.uniform(0.25, 0.9)
        shapes.append(Shape("poly", SHIRT, body(-0.7, -1.0, 0.7, -1.0, flare, hem, -flare, hem)))
    right = np.array([[sw, -2.6], [sw * 0.92, -1.75], [waist, -0.75], [waist * 1.02, -0.35]])  # right side
    shapes.append(Shape("poly", SHIRT, body(*right.ravel(), *(right[::-1] * [-1, 1]).ravel())))
    shapes += [_ellipse(upper, sh, 0.27 * u, 0.27 * u) for sh in shoulders]
    shapes += hair_behind
    shapes.append(_limb(SKIN, neck + body(0, 0.15)[0], head, 0.42 * u, 0.38 * u))
    shapes.append(_ellipse(SKIN, head, hx, hy, rng.normal(0, 5)))
    shapes += hair_over
    shapes += [s for i, a in enumerate(arms) if i != back for s in a]
    return shapes, _sample_look(rng, u)


def _sample_look(rng: np.random.Generator, u: float) -> Look:
    """Random clothes / skin / hair colours and the shirt's pattern."""

    def clothes() -> np.ndarray:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 230), rng.uniform(50, 245)]]], np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)

    colours = np.zeros((NUM_PARTS, 3), np.float32)
    colours[SKIN] = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.08, 3)
    colours[HAIR] = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    colours[SHIRT] = clothes()
    colours[SLEEVE] = colours[SHIRT] * 0.88
    colours[PANTS] = PANTS_COLOURS[rng.integers(len(PANTS_COLOURS))] if rng.random() < 0.7 else clothes()
    colours[SHOES] = rng.uniform(15, 90) * rng.uniform(0.8, 1.2, 3)
    colours[0] = colours[SHIRT]
    pattern = str(rng.choice(["solid", "stripes", "checks", "noise"], p=[0.4, 0.3, 0.15, 0.15]))
    return Look(
        colours=np.clip(colours, 0, 255),
        pattern=pattern,
        second=clothes(),
        period=float(rng.uniform(0.25, 0.7) * u),
        angle=float(rng.uniform(0, np.pi)),
        light=float(rng.uniform(0, 2 * np.pi)),
        blur=float(rng.uniform(0.0, 0.7) if rng.random() < 0.85 else rng.uniform(0.7, 1.3)),
    )


def extent(shapes: list[Shape]) -> np.ndarray:
    """(4,) x_min, y_min, x_max, y_max over all shapes."""
    pts = np.concatenate([s.points.reshape(-1, 2) for s in shapes])
    return np.concatenate([pts.min(0), pts.max(0)])


def translate(shapes: list[Shape], offset: np.ndarray) -> list[Shape]:
    """The shapes moved by `offset` (x, y)."""
    return [Shape(s.kind, s.label, s.points + offset, s.size) for s in shapes]


def rasterise(
    shapes: list[Shape], image_size: tuple[int, int], blur: float = 0.0, supersample: int = 4
) -> tuple[tuple[int, int], np.ndarray, np.ndarray] | None:
    """Draw a person's shapes inside the image: ((y0, x0), alpha uint8 (h, w), labels uint8 (h, w)) or None.

    The region (y0, x0, h, w) is the person's bounding box clipped to the image (with room for the blur).
    Labels are drawn `supersample` times finer; alpha = the covered fraction of each pixel's sub-pixels,
    then blurred by `blur` (sigma, pixels). Each pixel's label is the largest one among its sub-pixels,
    spread to the blurred rim.
    """
    H, W = image_size
    flat = np.concatenate([s.points.reshape(-1, 2) for s in shapes])  # (P, 2) every point of the person
    margin = 2 + 3 * blur
    x0, y0 = (max(0, int(v)) for v in np.floor(flat.min(0) - margin))
    x1, y1 = (min(n, int(v) + 1) for n, v in zip((W, H), np.ceil(flat.max(0) + margin)))
    if x1 <= x0 or y1 <= y0:
        return None
    h, w, S = y1 - y0, x1 - x0, supersample
    canvas = np.zeros((h * S, w * S), np.uint8)  # (h*S, w*S) part labels
    scale = S * (1 << SHIFT)
    # pixel (x, y) -> fixed-point sub-pixel coordinates; sub-pixel i's centre is at pixel (i + 0.5) / S - 0.5
    fixed = np.rint(((flat - [x0, y0] + 0.5) * S - 0.5) * (1 << SHIFT)).astype(np.int32)
    start = 0
    for s in shapes:
        pts = fixed[start : start + s.points.size // 2]
        start += len(pts)
        if s.kind == "limb":
            cv2.fillConvexPoly(canvas, pts[:4], s.label, cv2.LINE_8, SHIFT)
            for c, r in zip(pts[4:6].tolist(), s.size):
                cv2.circle(canvas, c, round(r * scale), s.label, -1, cv2.LINE_8, SHIFT)
        elif s.kind == "poly":
            cv2.fillPoly(canvas, [pts], s.label, cv2.LINE_8, SHIFT)
        elif s.kind == "ellipse":
            ax, ay, ang, a0, a1 = s.size
            axes = (round(ax * scale), round(ay * scale))
            cv2.ellipse(canvas, pts[0].tolist(), axes, ang, a0, a1, s.label, -1, cv2.LINE_8, SHIFT)
        elif s.kind == "strands":
            lines = list(pts.reshape(len(s.points), -1, 1, 2))
            cv2.polylines(canvas, lines, False, s.label, int(s.size[0]), cv2.LINE_8, SHIFT)
    covered = cv2.threshold(canvas, 0, 255, cv2.THRESH_BINARY)[1]
    alpha = cv2.resize(covered, (w, h), interpolation=cv2.INTER_AREA)
    if blur > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), blur, borderType=cv2.BORDER_REPLICATE)
    # (h, w): the largest label among each pixel's S x S sub-pixels (the dilation's anchor is at S // 2)
    labels = cv2.dilate(canvas, np.ones((S, S), np.uint8))[S // 2 :: S, S // 2 :: S].copy()
    rim = (labels == 0) & (alpha > 0)
    if rim.any():
        grown = cv2.dilate(labels, np.ones((3, 3), np.uint8), iterations=1 + int(np.ceil(2 * blur)))
        labels[rim] = grown[rim]
    return (y0, x0), alpha, labels


@lru_cache(maxsize=1)
def noise_tile() -> np.ndarray:
    """A fixed (1024, 1024) float32 field of unit Gaussian noise (made once per process, same everywhere)."""
    return np.random.default_rng(20230101).standard_normal((1024, 1024), dtype=np.float32)


def noise_crop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) float32 unit noise: a random window of `noise_tile` (tiled when larger than the tile)."""
    tile = noise_tile()
    if h > tile.shape[0] or w > tile.shape[1]:
        tile = np.tile(tile, (h // tile.shape[0] + 1, w // tile.shape[1] + 1))
    y, x = int(rng.integers(0, tile.shape[0] - h + 1)), int(rng.integers(0, tile.shape[1] - w + 1))
    return tile[y : y + h, x : x + w]


def paint(rng: np.random.Generator, labels: np.ndarray, alpha: np.ndarray, look: Look) -> np.ndarray:
    """Foreground colour (h, w, 3) float32 in [0, 255] of a person from its part labels (h, w).

    Each part gets its flat colour, the shirt / sleeves a pattern (stripes, checks or noise), then a soft
    light gradient, darker rims (a blurred matte, so limbs look round) and fine grain.
    """
    h, w = labels.shape
    table = np.zeros((256, 1, 3), np.uint8)
    table[:NUM_PARTS, 0] = np.rint(look.colours)
    fg = cv2.LUT(cv2.merge([labels] * 3), table).astype(np.float32)  # (h, w, 3) the parts' colours
    yy, xx = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None]
    cos, sin = math.cos(look.angle) / look.period, math.sin(look.angle) / look.period
    if look.pattern != "solid":
        if look.pattern == "stripes":
            on = np.sin((xx * cos + yy * sin) * math.pi) > 0.3
        elif look.pattern == "checks":
            on = (np.floor(xx * cos + yy * sin) + np.floor(yy * cos - xx * sin)) % 2 == 0
        else:
            small = rng.random((max(2, h // 6), max(2, w // 6)), dtype=np.float32)
            on = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) > 0.55
        sel = on & ((labels == SHIRT) | (labels == SLEEVE))
        second = np.zeros_like(look.colours)
        second[SHIRT], second[SLEEVE] = look.second, look.second * 0.88
        fg[sel] = second[labels[sel]]
    lx, ly = 0.2 * math.cos(look.light) / max(h, w), 0.2 * math.sin(look.light) / max(h, w)
    light = 1.0 + (xx - w / 2) * lx + (yy - h / 2) * ly  # (h, w) a soft light gradient
    k = 2 * max(1, round(0.024 * max(h, w))) + 1
    body = cv2.stackBlur(alpha, (k, k))  # ~ Gaussian, sigma ~ 0.012 * size
    shade = light * (0.6 + np.minimum(1.0, body * (1.6 / 255)) * 0.4)  # rims darker: limbs look round
    fg *= shade[..., None]
    fg += (noise_crop(rng, h, w) * float(rng.uniform(2, 8)))[..., None]
    return np.clip(fg, 0, 255, out=fg)
