"""Plain-NumPy rotated-box geometry used as the reference in the rotated-op tests.

Independent of the C++ code: the overlap is found by Sutherland-Hodgman clipping of one
rectangle against the other (in float64), not from intersection points and a hull.

Convention (upstream's, documented): (x_ctr, y_ctr, w, h, angle in degrees), the angle
counter-clockwise *on screen* in image coordinates, where y points down. A local point
(u, v) of the unrotated box therefore lands at (x + u cos a + v sin a, y - u sin a + v cos a):
with a = 90 the box's right edge (u = w/2) moves to the top of the image (smaller y).
"""
from fractions import Fraction

import numpy as np


def corners(box) -> np.ndarray:
    """(4, 2) image-space corners of (x_ctr, y_ctr, w, h, angle_degrees), in cyclic order
    (counter-clockwise in the x-right/y-up sense, so that the clipper's "left of an
    edge" is the inside)."""
    x, y, w, h, a = (float(v) for v in box)
    t = np.deg2rad(a)
    # Rows map local (u, v) to image (x, y): x = u cos + v sin, y = -u sin + v cos.
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    return local @ rot.T + np.array([x, y])


def _clip(poly: list, a: np.ndarray, b: np.ndarray) -> list:
    """Keep the part of `poly` left of the directed line a -> b."""

    def side(p):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    out = []
    for k in range(len(poly)):
        p, q = poly[k], poly[(k + 1) % len(poly)]
        sp, sq = side(p), side(q)
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            out.append(p + (q - p) * (sp / (sp - sq)))
    return out


def polygon_area(poly) -> float:
    if len(poly) < 3:
        return 0.0
    p = np.asarray(poly)
    return 0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1)))


def intersection_area(box1, box2) -> float:
    """Overlap area of two boxes with positive sides, by float64 clipping."""
    # Work relative to the first centre, like any careful implementation must.
    origin = np.array([float(box1[0]), float(box1[1])])
    poly = list(corners(box1) - origin)
    clip = corners(box2) - origin
    for k in range(4):
        if not poly:
            break
        poly = _clip(poly, clip[k], clip[(k + 1) % 4])
    return polygon_area(poly)


def iou(box1, box2) -> float:
    w1, h1, w2, h2 = float(box1[2]), float(box1[3]), float(box2[2]), float(box2[3])
    if min(w1, h1, w2, h2) <= 0:
        return 0.0
    inter = intersection_area(box1, box2)
    return inter / (w1 * h1 + w2 * h2 - inter)


def exact_intersection_area(poly1, poly2) -> float:
    """Area of the intersection of two convex polygons whose float64 vertices are taken as
    exact rationals: Sutherland-Hodgman clipping in Fractions, so no rounding at all (the
    arbiter when float methods disagree; ~0.6 ms a pair)."""

    def counter_clockwise(poly):
        pts = [(Fraction(float(x)), Fraction(float(y))) for x, y in poly]
        twice_area = sum(pts[k][0] * pts[k - 1][1] - pts[k - 1][0] * pts[k][1] for k in range(len(pts)))
        return pts if twice_area <= 0 else pts[::-1]  # (k, k-1) order: <= 0 means counter-clockwise

    poly, clip = counter_clockwise(poly1), counter_clockwise(poly2)
    for k in range(len(clip)):
        (ax, ay), (bx, by) = clip[k], clip[(k + 1) % len(clip)]
        sides = [(bx - ax) * (py - ay) - (by - ay) * (px - ax) for px, py in poly]
        out = []
        for j, (p, sp) in enumerate(zip(poly, sides)):
            q, sq = poly[(j + 1) % len(poly)], sides[(j + 1) % len(poly)]
            if sp >= 0:
                out.append(p)
            if (sp > 0 > sq) or (sp < 0 < sq):
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        poly = out
        if len(poly) < 3:
            return 0.0
    return float(abs(sum(poly[k - 1][0] * poly[k][1] - poly[k][0] * poly[k - 1][1] for k in range(len(poly)))) / 2)


def pairwise_iou(boxes1, boxes2) -> np.ndarray:
    b1 = np.asarray(boxes1, dtype=np.float64)
    b2 = np.asarray(boxes2, dtype=np.float64)
    return np.array([[iou(p, q) for q in b2] for p in b1]).reshape(len(b1), len(b2))


def nms(boxes, scores, threshold: float) -> list:
    """Greedy NMS by decreasing score, ties in input order."""
    ious = pairwise_iou(boxes, boxes)
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    suppressed = np.zeros(len(scores), dtype=bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= ious[i] > threshold
    return keep


def random_boxes(n: int, seed: int, spread: float = 50.0, angle_range: float = 720.0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    centers = rng.uniform(0, spread, size=(n, 2))
    sizes = rng.uniform(1, 30, size=(n, 2))
    angles = rng.uniform(-angle_range, angle_range, size=(n, 1))
    return np.concatenate([centers, sizes, angles], axis=1)
