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
template <typename acc_t>
struct Corners {
  int64_t idx[4];  // (y0,x0), (y0,x1), (y1,x0), (y1,x1)
  acc_t ly, lx;    // y - y0, x - x0
  bool inside;     // false: the sample is zero and has no gradient
};

template <typename acc_t>
D2_HOST_DEVICE Corners<acc_t> corners_of(acc_t y, acc_t x, int64_t height, int64_t width) {
  Corners<acc_t> c;
  // Written so that NaN positions count as outside.
  c.inside = y > acc_t(-1) && y < acc_t(height) && x > acc_t(-1) && x < acc_t(width);
  if (!c.inside) {
    c.idx[0] = c.idx[1] = c.idx[2] = c.idx[3] = -1;
    c.ly = c.lx = acc_t(0);
    return c;
  }
  // floor() without <cmath>, valid because y, x > -1 here.
  int64_t y0 = static_cast<int64_t>(y);
  int64_t x0 = static_cast<int64_t>(x);
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

// Bilinear weights of the four corners.
template <typename acc_t>
D2_HOST_DEVICE void corner_weights(const Corners<acc_t>& c, acc_t w[4]) {
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
D2_HOST_DEVICE int64_t base_y(const Geometry& g, int64_t h, int64_t i) {
  return h * g.stride_h - g.pad_h + i * g.dilation_h;
}
D2_HOST_DEVICE int64_t base_x(const Geometry& g, int64_t w, int64_t j) {
  return w * g.stride_w - g.pad_w + j * g.dilation_w;
}

// The per-(b, dg, k, pixel) part shared by all three kernels: sampling corners and mask.
template <typename T>
struct Tap {
  using acc_t = typename Scalar<T>::acc;
  Corners<acc_t> corners;
  acc_t mask;
  int64_t offset_index;  // index of the y offset; x is one plane later
  int64_t mask_index;
};

template <typename T>
D2_HOST_DEVICE Tap<T> tap_of(const Geometry& g, const T* offset, const T* mask, int64_t b, int64_t dg,
                             int64_t k, int64_t pixel) {
  using acc_t = typename Scalar<T>::acc;
  const int64_t K = g.kernel_size(), P = g.out_pixels();
  const int64_t h = pixel / g.out_w, w = pixel % g.out_w;
  const int64_t i = k / g.kernel_w, j = k % g.kernel_w;
  Tap<T> t;
  t.offset_index = (((b * g.deformable_groups + dg) * K + k) * 2) * P + pixel;
  t.mask_index = ((b * g.deformable_groups + dg) * K + k) * P + pixel;
  const acc_t dy = Scalar<T>::load(offset[t.offset_index]);
  const acc_t dx = Scalar<T>::load(offset[t.offset_index + P]);
  t.mask = mask != nullptr ? Scalar<T>::load(mask[t.mask_index]) : acc_t(1);
  t.corners = corners_of<acc_t>(acc_t(base_y(g, h, i)) + dy, acc_t(base_x(g, w, j)) + dx, g.height, g.width);
  return t;
}

D2_HOST_DEVICE int64_t column_index(const Geometry& g, int64_t c, int64_t k, int64_t b, int64_t pixel) {
  return (c * g.kernel_size() + k) * g.column_width() + b * g.out_pixels() + pixel;
}

// im2col: columns[c][k][b][pixel] = mask * bilinear(input[b][c], position) for c in [c_begin, c_end).
// The channel loop walks pointers over non-aliasing buffers and is unrolled on the GPU, so
// a thread has the gathers of several channels in flight at once.
template <typename T>
D2_HOST_DEVICE void im2col_element(const Geometry& g, const T* D2_RESTRICT input, const T* D2_RESTRICT offset,
                                   const T* D2_RESTRICT mask, int64_t b, int64_t dg, int64_t k, int64_t pixel,
                                   int64_t c_begin, int64_t c_end, T* D2_RESTRICT columns) {
  using acc_t = typename Scalar<T>::acc;
  const Tap<T> t = tap_of(g, offset, mask, b, dg, k, pixel);
  const int64_t count = c_end - c_begin;
  const int64_t column_stride = g.kernel_size() * g.column_width();  // one channel further
  T* D2_RESTRICT out = columns + column_index(g, c_begin, k, b, pixel);
  if (!t.corners.inside) {
    for (int64_t i = 0; i < count; ++i) out[i * column_stride] = Scalar<T>::store(acc_t(0));
    return;
  }
  acc_t w[4];
  corner_weights(t.corners, w);
  for (int q = 0; q < 4; ++q) w[q] *= t.mask;
  const int64_t plane_size = g.height * g.width;
  const T* D2_RESTRICT plane = input + (b * g.channels + c_begin) * plane_size;
#if defined(__CUDA_ARCH__)
#pragma unroll 4
#endif
  for (int64_t i = 0; i < count; ++i) {
    acc_t v[4];
    corner_values(plane + i * plane_size, t.corners, v);
    out[i * column_stride] = Scalar<T>::store(w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3]);
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
