// CPU kernels of ROIAlignRotated.
//
// Forward: rois are split across threads; each roi's sample taps are computed once and
// reused for every channel. Backward: rois are walked in order (they may overlap) and
// the channels of one roi are split across threads (they write disjoint planes).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

#include "ops/roi_align_rotated/roi_align_rotated.h"
#include "ops/roi_align_rotated/roi_align_rotated_utils.h"

namespace detectron2 {

namespace {

using roi_align_rotated::BilinearTap;
using roi_align_rotated::RotatedRoi;

// Beyond this many samples per roi the taps are recomputed per channel instead of cached.
constexpr int64_t kMaxCachedTaps = int64_t(1) << 20;

template <typename T>
void check_rois(const char* op, const T* rois, int64_t num_rois, int64_t batch_size) {
  int status = roi_align_rotated::kRoiOk;
  for (int64_t n = 0; n < num_rois; ++n) status |= roi_align_rotated::roi_status(rois + n * 6, batch_size);
  raise_for_roi_status(op, status, batch_size);
}

// Taps of every sample of every bin of one roi, bin-major; samples outside the map get
// zero weights (and a valid offset) so that the channel loop needs no branch.
template <typename T>
void fill_taps(const RotatedRoi<T>& g, int64_t ph_n, int64_t pw_n, int64_t height, int64_t width, std::vector<BilinearTap<T>>* taps) {
  taps->clear();
  for (int64_t ph = 0; ph < ph_n; ++ph) {
    for (int64_t pw = 0; pw < pw_n; ++pw) {
      for (int64_t iy = 0; iy < g.grid_h; ++iy) {
        for (int64_t ix = 0; ix < g.grid_w; ++ix) {
          T y, x;
          roi_align_rotated::sample_point(g, ph, pw, iy, ix, &y, &x);
          BilinearTap<T> t;
          if (!roi_align_rotated::bilinear_tap(height, width, y, x, &t)) t = BilinearTap<T>{0, 0, 0, 0, T(0), T(0), T(0), T(0)};
          taps->push_back(t);
        }
      }
    }
  }
}

template <typename T>
T bin_sum(const T* plane, const RotatedRoi<T>& g, int64_t ph, int64_t pw, int64_t height, int64_t width) {
  T sum = 0;
  for (int64_t iy = 0; iy < g.grid_h; ++iy) {
    for (int64_t ix = 0; ix < g.grid_w; ++ix) {
      T y, x;
      roi_align_rotated::sample_point(g, ph, pw, iy, ix, &y, &x);
      BilinearTap<T> t;
      if (roi_align_rotated::bilinear_tap(height, width, y, x, &t))
        sum += t.w1 * plane[t.o1] + t.w2 * plane[t.o2] + t.w3 * plane[t.o3] + t.w4 * plane[t.o4];
    }
  }
  return sum;
}

template <typename T>
void forward_kernel(
    const T* input, const T* rois, int64_t num_rois, int64_t channels, int64_t height, int64_t width,
    int64_t ph_n, int64_t pw_n, int64_t sampling_ratio, T spatial_scale, T* output) {
  const int64_t plane_size = height * width;
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<BilinearTap<T>> taps;
    for (int64_t n = begin; n < end; ++n) {
      const RotatedRoi<T> g = roi_align_rotated::make_roi(rois + n * 6, spatial_scale, ph_n, pw_n, sampling_ratio);
      const int64_t per_bin = g.grid_h * g.grid_w;
      const bool cached = per_bin * ph_n * pw_n <= kMaxCachedTaps;
      if (cached) fill_taps(g, ph_n, pw_n, height, width, &taps);
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = input + (g.batch * channels + c) * plane_size;
        T* out = output + (n * channels + c) * ph_n * pw_n;
        for (int64_t b = 0; b < ph_n * pw_n; ++b) {
          T sum = 0;
          if (cached) {
            const BilinearTap<T>* t = taps.data() + b * per_bin;
            for (int64_t s = 0; s < per_bin; ++s, ++t)
              sum += t->w1 * plane[t->o1] + t->w2 * plane[t->o2] + t->w3 * plane[t->o3] + t->w4 * plane[t->o4];
          } else {
            sum = bin_sum(plane, g, b / pw_n, b % pw_n, height, width);
          }
          out[b] = sum / g.count;
        }
      }
    }
  });
}

template <typename T>
void scatter_bin(T* plane, const RotatedRoi<T>& g, int64_t ph, int64_t pw, int64_t height, int64_t width, T value) {
  for (int64_t iy = 0; iy < g.grid_h; ++iy) {
    for (int64_t ix = 0; ix < g.grid_w; ++ix) {
      T y, x;
      roi_align_rotated::sample_point(g, ph, pw, iy, ix, &y, &x);
      BilinearTap<T> t;
      if (!roi_align_rotated::bilinear_tap(height, width, y, x, &t)) continue;
      plane[t.o1] += t.w1 * value;
      plane[t.o2] += t.w2 * value;
      plane[t.o3] += t.w3 * value;
      plane[t.o4] += t.w4 * value;
    }
  }
}

template <typename T>
void backward_kernel(
    const T* grad, const T* rois, int64_t num_rois, int64_t channels, int64_t height, int64_t width,
    int64_t ph_n, int64_t pw_n, int64_t sampling_ratio, T spatial_scale, T* grad_input) {
  const int64_t plane_size = height * width;
  std::vector<BilinearTap<T>> taps;
  for (int64_t n = 0; n < num_rois; ++n) {
    const RotatedRoi<T> g = roi_align_rotated::make_roi(rois + n * 6, spatial_scale, ph_n, pw_n, sampling_ratio);
    const int64_t per_bin = g.grid_h * g.grid_w;
    const bool cached = per_bin * ph_n * pw_n <= kMaxCachedTaps;
    if (cached) fill_taps(g, ph_n, pw_n, height, width, &taps);
    at::parallel_for(0, channels, 16, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        T* plane = grad_input + (g.batch * channels + c) * plane_size;
        const T* gout = grad + (n * channels + c) * ph_n * pw_n;
        for (int64_t b = 0; b < ph_n * pw_n; ++b) {
          const T value = gout[b] / g.count;
          if (!cached) {
            scatter_bin(plane, g, b / pw_n, b % pw_n, height, width, value);
            continue;
          }
          const BilinearTap<T>* t = taps.data() + b * per_bin;
          for (int64_t s = 0; s < per_bin; ++s, ++t) {
            plane[t->o1] += t->w1 * value;
            plane[t->o2] += t->w2 * value;
            plane[t->o3] += t->w3 * value;
            plane[t->o4] += t->w4 * value;
          }
        }
      }
    });
  }
}

at::Tensor forward_cpu(
    const at::Tensor& input_, const at::Tensor& rois_, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio) {
  const char* op = "roi_align_rotated_forward";
  check_roi_align_rotated_forward(input_, rois_, spatial_scale, pooled_height, pooled_width, sampling_ratio, false);
  const at::Tensor input = input_.contiguous(), rois = rois_.contiguous();
  const int64_t num_rois = rois.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
  at::Tensor output = at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_rotated_forward", [&] {
    check_rois(op, rois.data_ptr<scalar_t>(), num_rois, input.size(0));
    if (output.numel() == 0 || height == 0 || width == 0) return;
    forward_kernel<scalar_t>(
        input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), num_rois, channels, height, width, pooled_height,
        pooled_width, sampling_ratio, static_cast<scalar_t>(spatial_scale), output.data_ptr<scalar_t>());
  });
  return output;
}

at::Tensor backward_cpu(
    const at::Tensor& grad_, const at::Tensor& rois_, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t batch_size, int64_t channels, int64_t height, int64_t width,
    int64_t sampling_ratio) {
  const char* op = "roi_align_rotated_backward";
  check_roi_align_rotated_backward(
      grad_, rois_, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio,
      false);
  const at::Tensor grad = grad_.contiguous(), rois = rois_.contiguous();
  const int64_t num_rois = rois.size(0);
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_align_rotated_backward", [&] {
    check_rois(op, rois.data_ptr<scalar_t>(), num_rois, batch_size);
    if (grad.numel() == 0 || grad_input.numel() == 0) return;
    backward_kernel<scalar_t>(
        grad.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), num_rois, channels, height, width, pooled_height,
        pooled_width, sampling_ratio, static_cast<scalar_t>(spatial_scale), grad_input.data_ptr<scalar_t>());
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(detectron2, CPU, m) {
  m.impl("roi_align_rotated_forward", &forward_cpu);
  m.impl("roi_align_rotated_backward", &backward_cpu);
}

}  // namespace detectron2
