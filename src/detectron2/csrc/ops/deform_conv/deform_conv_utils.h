// Deformable convolution math shared by the CPU and CUDA kernels.
//
// Each "element" function below does the work of one (image, deformable group, kernel
// position, output pixel) for a range of input channels of that group: the sampling
// position and its bilinear corners depend only on those four indices, so they are
// computed once and reused for every channel. CPU loops and CUDA threads call exactly the
// same functions, which is what keeps both devices numerically identical.
//
// Layouts (all contiguous):
//   input    [B][C][H][W]
//   offset   [B][DG][K][2][Ho][Wo]   (channel 2k is the y offset, 2k+1 the x offset)
//   mask     [B][DG][K][Ho][Wo]      (optional: nullptr means all ones)
//   columns  [C][K][B][Ho][Wo]       (row c*K+k, column b*Ho*Wo + pixel) -- the GEMM operand
// with K = kernel_h * kernel_w and k = i * kernel_w + j.
//
// Index arithmetic is done in `I`: int64_t by default; the CUDA im2col uses int32_t when
// every index of the call fits (32-bit division and multiplication cost a fraction of
// the 64-bit ones, and the index math is a large share of a gather kernel's instructions).
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace detectron2 {
namespace deform_conv {

// Sizes of one im2col step (`batch` images) of a deformable convolution.
struct Geometry {
  int64_t batch, channels, height, width;
  int64_t out_h, out_w;
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t deformable_groups;

  D2_HOST_DEVICE int64_t kernel_size() const { return kernel_h * kernel_w; }
  D2_HOST_DEVICE int64_t out_pixels() const { return out_h * out_w; }
  D2_HOST_DEVICE int64_t group_channels() const { return channels / deformable_groups; }
  D2_HOST_DEVICE int64_t column_width() const { return batch * out_h * out_w; }
};

// Storage type -> accumulation type. float/double accumulate in themselves; the CUDA
// kernels specialise this for __half and __nv_bfloat16 (accumulating in float).
template <typename T>
struct Scalar {
  using acc = T;
  static D2_HOST_DEVICE acc load(T v) { return v; }
  static D2_HOST_DEVICE T store(acc v) { return v; }
};

// Where a sampling point falls: its four neighbours (row-major index into one H x W
// plane, -1 when outside the image) and the fractional parts.
template <typename acc_t, typename I = int64_t>
struct Corners {
  I idx[4];  // (y0,x0), (y0,x1), (y1,x0), (y1,x1)
  acc_t ly, lx;    // y - y0, x - x0
  bool inside;     // false: the sample is zero and has no gradient
};

template <typename acc_t, typename I = int64_t>
D2_HOST_DEVICE Corners<acc_t, I> corners_of(acc_t y, acc_t x, I height, I width) {
  Corners<acc_t, I> c;
  // Written so that NaN positions count as outside.
  c.inside = y > acc_t(-1) && y < acc_t(height) && x > acc_t(-1) && x < acc_t(width);
  if (!c.inside) {
    c.idx[0] = c.idx[1] = c.idx[2] = c.idx[3] = -1;
    c.ly = c.lx = acc_t(0);
    return c;
  }
  // floor() without <cmath>, valid because y, x > -1 here.
  I y0 = static_cast<I>(y);
  I x0 = static_cast<I>(x);
  if (acc_t(y0) > y) --y0;
  if (acc_t(x0) > x) --x0;
  c.ly = y - acc_t(y0);
  c.lx = x - acc_t(x0);
  const bool y0_ok = y0 >= 0, y1_ok = y0 + 1 < height;
  const bool x0_ok = x0 >= 0, x1_ok = x0 + 1 < width;
  c.idx[0] = (y0_ok && x0_ok) ? y0 * width + x0 : -1;
  c.idx[1] = (y0_ok && x1_ok) ? y0 * width + x0 + 1 : -1;
  c.idx[2] = (y1_ok && x0_ok) ? (y0 + 1) * width + x0 : -1;
  c.idx[3] = (y1_ok && x1_ok) ? (y0 + 1) * width + x0 + 1 : -1;
  return c;
}

// Channels [begin, end) of chunk `chunk` of deformable group `dg`: the group's channels cut
// into `chunks` runs of ceil(group_channels / chunks), the last ones shorter or empty.
template <typename I>
D2_HOST_DEVICE void chunk_channels(I dg, I chunk, I chunks, I group_channels, I* begin, I* end) {
  const I per = (group_channels + chunks - 1) / chunks, group_end = (dg + 1) * group_channels;
  const I first = dg * group_channels + chunk * per;
  *begin = first < group_end ? first : group_end;
  *end = *begin + per < group_end ? *begin + per : group_end;
}

// Bilinear weights of the four corners.
template <typename acc_t, typename I>
D2_HOST_DEVICE void corner_weights(const Corners<acc_t, I>& c, acc_t w[4]) {
  const acc_t hy = acc_t(1) - c.ly, hx = acc_t(1) - c.lx;
  w[0] = hy * hx;
  w[1] = hy * c.lx;
  w[2] = c.ly * hx;
  w[3] = c.ly * c.lx;
}

template <typename T>
D2_HOST_DEVICE void corner_values(const T* plane, const Corners<typename Scalar<T>::acc>& c,
                                  typename Scalar<T>::acc v[4]) {
  using acc_t = typename Scalar<T>::acc;
  for (int i = 0; i < 4; ++i) v[i] = c.idx[i] >= 0 ? Scalar<T>::load(plane[c.idx[i]]) : acc_t(0);
}

// The sampling position of kernel tap (i, j) for output pixel (h, w), before the offset.
template <typename I>
D2_HOST_DEVICE I base_y(const Geometry& g, I h, I i) {
  return h * I(g.stride_h) - I(g.pad_h) + i * I(g.dilation_h);
}
template <typename I>
D2_HOST_DEVICE I base_x(const Geometry& g, I w, I j) {
  return w * I(g.stride_w) - I(g.pad_w) + j * I(g.dilation_w);
}

// The per-(b, dg, k, pixel) part shared by all three kernels: sampling corners and mask.
template <typename T, typename I = int64_t>
struct Tap {
  using acc_t = typename Scalar<T>::acc;
  Corners<acc_t, I> corners;
  acc_t mask;
  I offset_index;  // index of the y offset; x is one plane later
  I mask_index;
};

template <typename T, typename I>
D2_HOST_DEVICE Tap<T, I> tap_of(const Geometry& g, const T* offset, const T* mask, I b, I dg, I k, I pixel) {
  using acc_t = typename Scalar<T>::acc;
  const I K = I(g.kernel_size()), P = I(g.out_pixels());
  const I h = pixel / I(g.out_w), w = pixel - h * I(g.out_w);
  const I i = k / I(g.kernel_w), j = k - i * I(g.kernel_w);
  const I tap = (b * I(g.deformable_groups) + dg) * K + k;
  Tap<T, I> t;
  t.offset_index = 2 * tap * P + pixel;  // two offset planes (y, x) a tap
  t.mask_index = tap * P + pixel;
  const acc_t dy = Scalar<T>::load(offset[t.offset_index]);
  const acc_t dx = Scalar<T>::load(offset[t.offset_index + P]);
  t.mask = mask != nullptr ? Scalar<T>::load(mask[t.mask_index]) : acc_t(1);
  t.corners = corners_of<acc_t, I>(acc_t(base_y(g, h, i)) + dy, acc_t(base_x(g, w, j)) + dx, I(g.height),
                                   I(g.width));
  return t;
}

template <typename I>
D2_HOST_DEVICE I column_index(const Geometry& g, I c, I k, I b, I pixel) {
  return (c * I(g.kernel_size()) + k) * I(g.column_width()) + b * I(g.out_pixels()) + pixel;
}

// im2col: columns[c][k][b][pixel] = mask * bilinear(input[b][c], position) for c in [c_begin, c_end).
// The loop advances two row pointers (the corners' top and bottom rows, right corners at +1)
// by a plane and the output by a column row a channel; a corner outside the image keeps
// its load skipped, so a row pointer just outside the plane is formed but never read. On
// the GPU an iteration is then four loads at immediate offsets, four FMAs and a store (the
// fewest instructions of the forms measured in benchmarks/results/h200-2026-12-03-session8),
// and the unrolled loop keeps the gathers of several channels in flight.
template <typename T, typename I>
D2_HOST_DEVICE void im2col_element(const Geometry& g, const T* D2_RESTRICT input, const T* D2_RESTRICT offset,
                                   const T* D2_RESTRICT mask, I b, I dg, I k, I pixel, I c_begin, I c_end,
                                   T* D2_RESTRICT columns) {
  using acc_t = typename Scalar<T>::acc;
  const Tap<T, I> t = tap_of(g, offset, mask, b, dg, k, pixel);
  const I count = c_end - c_begin;
  const I column_stride = I(g.kernel_size()) * I(g.column_width());  // one channel further
  T* D2_RESTRICT out = columns + column_index(g, c_begin, k, b, pixel);
  if (!t.corners.inside) {
    for (I i = 0; i < count; ++i, out += column_stride) *out = Scalar<T>::store(acc_t(0));
    return;
  }
  acc_t w[4];
  corner_weights(t.corners, w);
  for (int q = 0; q < 4; ++q) w[q] *= t.mask;
  const I* idx = t.corners.idx;
  const bool has[4] = {idx[0] >= 0, idx[1] >= 0, idx[2] >= 0, idx[3] >= 0};
  const I width = I(g.width), plane_size = I(g.height) * width;
  // (y0, x0) in the plane, from whichever corner is inside (one always is).
  const I top_left = has[0] ? idx[0] : has[1] ? idx[1] - 1 : has[2] ? idx[2] - width : idx[3] - width - 1;
  const T* top = input + (b * I(g.channels) + c_begin) * plane_size + top_left;
  const T* bottom = top + width;
#if defined(__CUDA_ARCH__)
#pragma unroll 4
#endif
  for (I i = 0; i < count; ++i) {
    const acc_t v0 = has[0] ? Scalar<T>::load(top[0]) : acc_t(0);
    const acc_t v1 = has[1] ? Scalar<T>::load(top[1]) : acc_t(0);
    const acc_t v2 = has[2] ? Scalar<T>::load(bottom[0]) : acc_t(0);
    const acc_t v3 = has[3] ? Scalar<T>::load(bottom[1]) : acc_t(0);
    *out = Scalar<T>::store(w[0] * v0 + w[1] * v1 + w[2] * v2 + w[3] * v3);
    top += plane_size;
    bottom += plane_size;
    out += column_stride;
  }
}

// col2im: scatter the column gradients of channels [c_begin, c_end) back onto the four
// corners of the sampling point in grad_input (accumulation type). `Add` is the
// accumulation policy: a plain += on the CPU, atomicAdd on the GPU.
template <typename T, typename Add>
D2_HOST_DEVICE void col2im_element(const Geometry& g, const T* grad_columns, const T* offset, const T* mask,
                                   int64_t b, int64_t dg, int64_t k, int64_t pixel, int64_t c_begin,
                                   int64_t c_end, typename Scalar<T>::acc* grad_input) {
  using acc_t = typename Scalar<T>::acc;
  const Tap<T> t = tap_of(g, offset, mask, b, dg, k, pixel);
  if (!t.corners.inside) return;
  acc_t w[4];
  corner_weights(t.corners, w);
  const int64_t plane_size = g.height * g.width;
  for (int64_t c = c_begin; c < c_end; ++c) {
    const acc_t grad = t.mask * Scalar<T>::load(grad_columns[column_index(g, c, k, b, pixel)]);
    acc_t* plane = grad_input + (b * g.channels + c) * plane_size;
    for (int q = 0; q < 4; ++q) {
      if (t.corners.idx[q] >= 0) Add::add(plane + t.corners.idx[q], w[q] * grad);
    }
  }
}

// Gradients w.r.t. the offsets (y, x) and the mask of one tap, summed over the channels
// [c_begin, c_end) of its deformable group (a partial sum when that is not the whole group).
template <typename T>
struct CoordGrad {
  typename Scalar<T>::acc dy, dx, dmask;
  int64_t offset_index, mask_index;  // where they go (x is one plane after y)
};

template <typename T>
D2_HOST_DEVICE CoordGrad<T> coord_grad_element(const Geometry& g, const T* grad_columns, const T* input,
                                               const T* offset, const T* mask, int64_t b, int64_t dg, int64_t k,
                                               int64_t pixel, int64_t c_begin, int64_t c_end) {
  using acc_t = typename Scalar<T>::acc;
  const Tap<T> t = tap_of(g, offset, mask, b, dg, k, pixel);
  CoordGrad<T> r{acc_t(0), acc_t(0), acc_t(0), t.offset_index, t.mask_index};
  if (!t.corners.inside) return r;
  acc_t w[4];
  corner_weights(t.corners, w);
  const acc_t ly = t.corners.ly, lx = t.corners.lx, hy = acc_t(1) - ly, hx = acc_t(1) - lx;
  const int64_t plane_size = g.height * g.width;
  acc_t gy = acc_t(0), gx = acc_t(0), gm = acc_t(0);
  for (int64_t c = c_begin; c < c_end; ++c) {
    const acc_t grad = Scalar<T>::load(grad_columns[column_index(g, c, k, b, pixel)]);
    acc_t v[4];
    corner_values(input + (b * g.channels + c) * plane_size, t.corners, v);
    // d(bilinear)/dy and d(bilinear)/dx of the interpolated value.
    gy += grad * (hx * (v[2] - v[0]) + lx * (v[3] - v[1]));
    gx += grad * (hy * (v[1] - v[0]) + ly * (v[3] - v[2]));
    gm += grad * (w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3]);
  }
  r.dy = gy * t.mask;
  r.dx = gx * t.mask;
  r.dmask = gm;
  return r;
}

// Stores a complete (whole-group) coordinate gradient; grad_mask may be nullptr.
template <typename T, typename OutT>
D2_HOST_DEVICE void store_coord_grad(const Geometry& g, const CoordGrad<T>& r, OutT* grad_offset, OutT* grad_mask) {
  grad_offset[r.offset_index] = Scalar<OutT>::store(r.dy);
  grad_offset[r.offset_index + g.out_pixels()] = Scalar<OutT>::store(r.dx);
  if (grad_mask != nullptr) grad_mask[r.mask_index] = Scalar<OutT>::store(r.dmask);
}

}  // namespace deform_conv
}  // namespace detectron2
