// Rotated-box intersection geometry shared by the CPU and CUDA kernels of
// box_iou_rotated and nms_rotated, so that both devices compute the same IoU.
//
// A box is (x_ctr, y_ctr, w, h, angle) with the angle in degrees, counter-clockwise on
// screen in image coordinates (x right, y down), as upstream documents it and as
// ROIAlignRotated samples: a local point (u, v) maps to
// (x_ctr + u cos a + v sin a, y_ctr - u sin a + v cos a).
// The overlap of two rectangles is convex, so its vertices are exactly the edge/edge
// crossings plus the corners of each box lying inside the other. Sorting those points
// by angle around their mean orders them along the hull; the shoelace formula then
// gives the area. Everything is computed relative to the midpoint of the two centres,
// so that large coordinates do not cost precision.
#pragma once

#include <cmath>

#include "common/host_device.h"

namespace detectron2 {
namespace rotated {

// Float overloads on the host too, matching the device math.
using std::cos;
using std::fabs;
using std::fmax;
using std::fmin;
using std::fmod;
using std::sin;
using std::sqrt;

// At most 4 x 4 edge crossings plus 4 + 4 contained corners.
constexpr int kMaxPoints = 24;

template <typename T>
struct Point {
  T x, y;
};

template <typename T>
struct Box {
  T x, y, w, h, angle_deg;
};

template <typename T>
D2_HOST_DEVICE T cross(const Point<T>& a, const Point<T>& b) {
  return a.x * b.y - a.y * b.x;
}

// Relative tolerance of "on the boundary" decisions: a few ulps of the coordinates
// involved. It scales with the magnitude of the point and the centre (the rounding
// they carry), not with the box sides: a corner accepted as inside by the tolerance
// while lying outside adds a sliver, which for thin boxes (aspect ratios in the
// thousands) would be a visible part of their area.
template <typename T>
D2_HOST_DEVICE T geometry_eps() {
  return sizeof(T) >= 8 ? T(1e-12) : T(1e-6);
}

// Degrees to radians after an exact reduction into (-360, 360): angles a whole number
// of turns apart then give bit-identical corners, and large angles keep their
// precision.
template <typename T>
D2_HOST_DEVICE T angle_radians(T degrees) {
  return fmod(degrees, T(360)) * T(0.017453292519943295);  // pi / 180
}

// Corners in cyclic order, relative to (ox, oy). Also returns cos/sin of the angle
// for the containment test.
template <typename T>
D2_HOST_DEVICE void box_corners(const Box<T>& b, T ox, T oy, Point<T> (&pts)[4], T& c, T& s) {
  const T theta = angle_radians(b.angle_deg);
  c = cos(theta);
  s = sin(theta);
  const T cx = b.x - ox, cy = b.y - oy;
  const T hw = b.w * T(0.5), hh = b.h * T(0.5);
  const T us[4] = {-hw, hw, hw, -hw};
  const T vs[4] = {-hh, -hh, hh, hh};
  for (int k = 0; k < 4; ++k) {
    pts[k].x = cx + us[k] * c + vs[k] * s;
    pts[k].y = cy - us[k] * s + vs[k] * c;
  }
}

// Whether p (relative to the same origin as the box centre (cx, cy)) lies inside the
// box, up to the rounding of the coordinates (so that shared corners count as inside).
// `extent` adds the magnitude of the values p was computed from, if larger.
template <typename T>
D2_HOST_DEVICE bool contains(const Point<T>& p, T cx, T cy, T hw, T hh, T c, T s, T extent = T(0)) {
  const T tol = geometry_eps<T>() * (fabs(p.x) + fabs(p.y) + fabs(cx) + fabs(cy) + extent);
  const T dx = p.x - cx, dy = p.y - cy;
  const T u = dx * c - dy * s;  // inverse of the box_corners map
  const T v = dx * s + dy * c;
  return fabs(u) <= hw + tol && fabs(v) <= hh + tol;
}

// Monotonic stand-in for atan2(dy, dx) in [0, 4): cheaper and exact for ordering.
template <typename T>
D2_HOST_DEVICE T pseudo_angle(T dx, T dy) {
  const T d = fabs(dx) + fabs(dy);
  if (d == T(0)) {
    return T(0);
  }
  const T r = dx / d;  // in [-1, 1]
  return dy >= T(0) ? T(1) - r : T(3) + r;
}

// Area of the convex polygon spanned by pts[0..n) (in any order).
template <typename T>
D2_HOST_DEVICE T convex_area(Point<T>* pts, int n) {
  if (n < 3) {
    return T(0);
  }
  T mx = 0, my = 0;
  for (int k = 0; k < n; ++k) {
    mx += pts[k].x;
    my += pts[k].y;
  }
  mx /= T(n);
  my /= T(n);
  T key[kMaxPoints];
  for (int k = 0; k < n; ++k) {
    pts[k].x -= mx;
    pts[k].y -= my;
    key[k] = pseudo_angle(pts[k].x, pts[k].y);
  }
  // Insertion sort: n <= 24, and it is stable and branch-light on a GPU.
  for (int k = 1; k < n; ++k) {
    const T kk = key[k];
    const Point<T> pk = pts[k];
    int j = k - 1;
    while (j >= 0 && key[j] > kk) {
      key[j + 1] = key[j];
      pts[j + 1] = pts[j];
      --j;
    }
    key[j + 1] = kk;
    pts[j + 1] = pk;
  }
  T twice = 0;
  for (int k = 0; k < n; ++k) {
    twice += cross(pts[k], pts[k + 1 == n ? 0 : k + 1]);
  }
  return fabs(twice) * T(0.5);
}

// Area of the intersection of two rotated boxes.
template <typename T>
D2_HOST_DEVICE T intersection_area(const Box<T>& a, const Box<T>& b) {
  const T ox = (a.x + b.x) * T(0.5), oy = (a.y + b.y) * T(0.5);
  Point<T> pa[4], pb[4];
  T ca, sa, cb, sb;
  box_corners(a, ox, oy, pa, ca, sa);
  box_corners(b, ox, oy, pb, cb, sb);

  Point<T> pts[kMaxPoints];
  int n = 0;
  const T ax = a.x - ox, ay = a.y - oy, bx = b.x - ox, by = b.y - oy;
  for (int k = 0; k < 4; ++k) {
    if (contains(pa[k], bx, by, b.w * T(0.5), b.h * T(0.5), cb, sb)) {
      pts[n++] = pa[k];
    }
    if (contains(pb[k], ax, ay, a.w * T(0.5), a.h * T(0.5), ca, sa)) {
      pts[n++] = pb[k];
    }
  }
  // Edge crossings: p + t d = q + u e with t, u in [0, 1]. Parallel edges contribute
  // through the containment test above (their crossings, if any, are corners).
  for (int i = 0; i < 4; ++i) {
    const Point<T> p = pa[i];
    const Point<T> d = {pa[(i + 1) & 3].x - p.x, pa[(i + 1) & 3].y - p.y};
    for (int j = 0; j < 4; ++j) {
      const Point<T> q = pb[j];
      const Point<T> e = {pb[(j + 1) & 3].x - q.x, pb[(j + 1) & 3].y - q.y};
      const T den = cross(d, e);
      if (den == T(0)) {
        continue;
      }
      const Point<T> qp = {q.x - p.x, q.y - p.y};
      const T t = cross(qp, e) / den;
      const T u = cross(qp, d) / den;
      if (t >= T(0) && t <= T(1) && u >= T(0) && u <= T(1)) {
        // The point lies on a's edge by construction. For nearly parallel edges den is
        // rounding noise and so are t and u: keep the point only if it is really on b.
        const Point<T> x = {p.x + t * d.x, p.y + t * d.y};
        const T extent = fabs(p.x) + fabs(p.y) + fabs(d.x) + fabs(d.y) + fabs(q.x) + fabs(q.y) + fabs(e.x) + fabs(e.y);
        if (contains(x, bx, by, b.w * T(0.5), b.h * T(0.5), cb, sb, extent)) {
          pts[n++] = x;
        }
      }
    }
  }
  return convex_area(pts, n);
}

// Overlap of two boxes with the same angle: in the frame of `a` both are axis-aligned.
// Exact, and much cheaper than the polygon path (angle-0 boxes, shared anchor angles).
template <typename T>
D2_HOST_DEVICE T aligned_intersection_area(const Box<T>& a, const Box<T>& b) {
  const T theta = angle_radians(a.angle_deg);
  const T c = cos(theta), s = sin(theta);
  const T dx = b.x - a.x, dy = b.y - a.y;
  const T u = dx * c - dy * s;  // b's centre in a's frame (inverse of box_corners)
  const T v = dx * s + dy * c;
  const T ow = fmin(a.w * T(0.5), u + b.w * T(0.5)) - fmax(-a.w * T(0.5), u - b.w * T(0.5));
  const T oh = fmin(a.h * T(0.5), v + b.h * T(0.5)) - fmax(-a.h * T(0.5), v - b.h * T(0.5));
  return ow > T(0) && oh > T(0) ? ow * oh : T(0);
}

// Lexicographic order of the 5 values (NaN compares as neither less nor greater).
template <typename T>
D2_HOST_DEVICE bool box_less(const T* a, const T* b) {
  for (int k = 0; k < 5; ++k) {
    if (a[k] < b[k]) return true;
    if (b[k] < a[k]) return false;
  }
  return false;
}

// IoU of two boxes given as 5 consecutive values; 0 for empty or degenerate boxes.
// The pair is put in a canonical order first, so that IoU(a, b) and IoU(b, a) are the
// same number bit for bit (the polygon arithmetic itself depends on the order).
template <typename T>
D2_HOST_DEVICE T single_box_iou(const T* raw_a, const T* raw_b) {
  if (box_less(raw_b, raw_a)) {
    const T* t = raw_a;
    raw_a = raw_b;
    raw_b = t;
  }
  const Box<T> a = {raw_a[0], raw_a[1], raw_a[2], raw_a[3], raw_a[4]};
  const Box<T> b = {raw_b[0], raw_b[1], raw_b[2], raw_b[3], raw_b[4]};
  const T area_a = a.w * a.h;
  const T area_b = b.w * b.h;
  // `!(x > 0)` also rejects NaN sizes.
  if (!(a.w > T(0)) || !(a.h > T(0)) || !(b.w > T(0)) || !(b.h > T(0))) {
    return T(0);
  }
  // Boxes lie inside their circumscribed circles: disjoint circles, no overlap. This
  // cheap test skips the polygon work for most pairs in NMS and large IoU matrices.
  const T dx = a.x - b.x, dy = a.y - b.y;
  const T reach = T(0.5) * (sqrt(a.w * a.w + a.h * a.h) + sqrt(b.w * b.w + b.h * b.h));
  if (dx * dx + dy * dy > reach * reach) {
    return T(0);
  }
  const T inter = a.angle_deg == b.angle_deg ? aligned_intersection_area(a, b) : intersection_area(a, b);
  const T uni = area_a + area_b - inter;
  if (!(uni > T(0))) {
    return T(0);
  }
  // Clamp the rounding of nearly identical boxes into [0, 1].
  const T iou = inter / uni;
  return iou > T(1) ? T(1) : iou;
}

}  // namespace rotated
}  // namespace detectron2
