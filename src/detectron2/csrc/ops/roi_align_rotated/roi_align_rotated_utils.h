// Geometry and bilinear sampling of ROIAlignRotated, shared by the CPU and CUDA kernels
// so that both compute exactly the same sample points and weights.
//
// A roi is (batch_index, x_ctr, y_ctr, w, h, angle_degrees) with the angle
// counter-clockwise. Each output bin averages a grid of samples; the grid is laid out
// in the roi's own frame (origin at its centre) and rotated into the image.
#pragma once

#include <math.h>
#include <stdint.h>

#include "common/host_device.h"

namespace detectron2 {
namespace roi_align_rotated {

// Status of one roi, checked on the host side before any kernel reads the input.
enum RoiStatus : int { kRoiOk = 0, kRoiNonFinite = 1, kRoiBadBatchIndex = 2, kRoiNegativeSize = 4 };

// Largest number of samples per bin side, which bounds the work of any call to
// K * C * pooled_height * pooled_width * kMaxSamplingRatio^2 bilinear taps:
// - an explicit sampling_ratio above it is rejected (ValueError naming the argument);
// - the adaptive count ceil(roi_size / pooled_size) is capped at it. It only bites for
//   rois more than kMaxSamplingRatio * pooled_size feature-map pixels long (1792 px for
//   a 7x7 output), far beyond any real feature map, where upstream would run for hours.
constexpr int64_t kMaxSamplingRatio = 256;

D2_HOST_DEVICE float math_cos(float v) { return cosf(v); }
D2_HOST_DEVICE double math_cos(double v) { return cos(v); }
D2_HOST_DEVICE float math_sin(float v) { return sinf(v); }
D2_HOST_DEVICE double math_sin(double v) { return sin(v); }
D2_HOST_DEVICE float math_ceil(float v) { return ceilf(v); }
D2_HOST_DEVICE double math_ceil(double v) { return ceil(v); }
D2_HOST_DEVICE bool math_isfinite(float v) { return v - v == 0.0f; }  // false for inf and nan
D2_HOST_DEVICE bool math_isfinite(double v) { return v - v == 0.0; }

// `r` holds the 6 roi values already converted to the accumulation type T.
template <typename T>
D2_HOST_DEVICE int roi_status(const T* r, int64_t batch_size) {
  int status = kRoiOk;
  for (int i = 0; i < 6; ++i) {
    if (!math_isfinite(r[i])) status |= kRoiNonFinite;
  }
  if (status != kRoiOk) return status;
  // NaN-safe form: written so that every comparison must hold.
  if (!(r[0] >= T(0) && r[0] < static_cast<T>(batch_size) && r[0] == math_ceil(r[0]))) status |= kRoiBadBatchIndex;
  if (!(r[3] >= T(0) && r[4] >= T(0))) status |= kRoiNegativeSize;
  return status;
}

template <typename T>
struct RotatedRoi {
  int64_t batch;
  T center_x, center_y;  // in input pixels, shifted by -0.5 (pixel centres at integers)
  T cos_a, sin_a;
  T start_x, start_y;  // top-left corner relative to the centre, before rotation
  T bin_w, bin_h;
  int64_t grid_w, grid_h;  // samples per bin along each side
  T count;                 // samples per bin, at least 1 (empty rois average to 0)
};

template <typename T>
D2_HOST_DEVICE int64_t adaptive_grid(T roi_size, int64_t pooled, int64_t sampling_ratio) {
  if (sampling_ratio > 0) return sampling_ratio < kMaxSamplingRatio ? sampling_ratio : kMaxSamplingRatio;
  const T g = math_ceil(roi_size / static_cast<T>(pooled));
  // `!(g < cap)` also catches NaN; a zero-size roi gets 0 samples (its bins average to 0).
  if (!(g < static_cast<T>(kMaxSamplingRatio))) return kMaxSamplingRatio;
  return g > T(0) ? static_cast<int64_t>(g) : 0;
}

template <typename T>
D2_HOST_DEVICE RotatedRoi<T> make_roi(
    const T* r, T spatial_scale, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio) {
  RotatedRoi<T> g;
  g.batch = static_cast<int64_t>(r[0]);
  g.center_x = r[1] * spatial_scale - T(0.5);
  g.center_y = r[2] * spatial_scale - T(0.5);
  const T width = r[3] * spatial_scale;
  const T height = r[4] * spatial_scale;
  const T angle = r[5] * T(3.14159265358979323846 / 180.0);
  g.cos_a = math_cos(angle);
  g.sin_a = math_sin(angle);
  g.start_x = -width / T(2);
  g.start_y = -height / T(2);
  g.bin_w = width / static_cast<T>(pooled_width);
  g.bin_h = height / static_cast<T>(pooled_height);
  g.grid_w = adaptive_grid(width, pooled_width, sampling_ratio);
  g.grid_h = adaptive_grid(height, pooled_height, sampling_ratio);
  const int64_t n = g.grid_w * g.grid_h;
  g.count = static_cast<T>(n > 1 ? n : 1);
  return g;
}

// Image coordinates (y, x) of sample (iy, ix) of bin (ph, pw). I is the integer type
// of the caller's loops (int32 in the CUDA fast path, int64 elsewhere).
template <typename T, typename I>
D2_HOST_DEVICE void sample_point(const RotatedRoi<T>& g, I ph, I pw, I iy, I ix, T* y, T* x) {
  const T yy = g.start_y + static_cast<T>(ph) * g.bin_h +
      (static_cast<T>(iy) + T(0.5)) * g.bin_h / static_cast<T>(g.grid_h);
  const T xx = g.start_x + static_cast<T>(pw) * g.bin_w +
      (static_cast<T>(ix) + T(0.5)) * g.bin_w / static_cast<T>(g.grid_w);
  // Counter-clockwise on screen (y down): local (xx, yy) maps to
  // (cx + xx cos + yy sin, cy - xx sin + yy cos), the map box_iou_rotated uses too.
  *y = yy * g.cos_a - xx * g.sin_a + g.center_y;
  *x = yy * g.sin_a + xx * g.cos_a + g.center_x;
}

// The four pixels (offsets into one H*W plane, of index type I) and weights of a
// bilinear sample.
template <typename T, typename I = int64_t>
struct BilinearTap {
  I o1, o2, o3, o4;
  T w1, w2, w3, w4;
};

// Fills `t` and returns true when (y, x) contributes; samples more than one pixel
// outside the map (or NaN) contribute nothing. Needs height, width >= 1.
template <typename T, typename I>
D2_HOST_DEVICE bool bilinear_tap(I height, I width, T y, T x, BilinearTap<T, I>* t) {
  if (!(y >= T(-1) && y <= static_cast<T>(height) && x >= T(-1) && x <= static_cast<T>(width))) return false;
  if (y < T(0)) y = T(0);
  if (x < T(0)) x = T(0);
  I y0 = static_cast<I>(y);
  I x0 = static_cast<I>(x);
  I y1, x1;
  if (y0 >= height - 1) {
    y0 = y1 = height - 1;
    y = static_cast<T>(y0);
  } else {
    y1 = y0 + 1;
  }
  if (x0 >= width - 1) {
    x0 = x1 = width - 1;
    x = static_cast<T>(x0);
  } else {
    x1 = x0 + 1;
  }
  const T ly = y - static_cast<T>(y0), lx = x - static_cast<T>(x0);
  const T hy = T(1) - ly, hx = T(1) - lx;
  t->o1 = y0 * width + x0;
  t->o2 = y0 * width + x1;
  t->o3 = y1 * width + x0;
  t->o4 = y1 * width + x1;
  t->w1 = hy * hx;
  t->w2 = hy * lx;
  t->w3 = ly * hx;
  t->w4 = ly * lx;
  return true;
}

}  // namespace roi_align_rotated
}  // namespace detectron2
