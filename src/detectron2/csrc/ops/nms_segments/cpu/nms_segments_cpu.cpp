#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/nms_segments/nms_segments.h"

namespace detectron2 {

namespace {

// Greedy NMS of boxes [0, n) (priority order), writing keep[0, n). The IoU is computed
// exactly as torchvision's CPU nms does (float arithmetic, a double comparison), so the
// kept sets match its per-segment results.
template <typename T>
void nms_one_segment(const T* boxes, const bool* valid, int64_t n, double iou_threshold, bool* keep) {
  std::vector<char> suppressed(n, 0);
  std::vector<T> area(n);
  for (int64_t i = 0; i < n; ++i) {
    const T* b = boxes + i * 4;
    area[i] = (b[2] - b[0]) * (b[3] - b[1]);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!valid[i] || suppressed[i]) {
      continue;
    }
    keep[i] = true;
    const T* bi = boxes + i * 4;
    for (int64_t j = i + 1; j < n; ++j) {
      if (!valid[j] || suppressed[j]) {
        continue;
      }
      const T* bj = boxes + j * 4;
      const T w = std::max(T(0), std::min(bi[2], bj[2]) - std::max(bi[0], bj[0]));
      const T h = std::max(T(0), std::min(bi[3], bj[3]) - std::max(bi[1], bj[1]));
      const T inter = w * h;
      const T iou = inter / (area[i] + area[j] - inter);
      if (iou > iou_threshold) {
        suppressed[j] = 1;
      }
    }
  }
}

}  // namespace

at::Tensor nms_segments_cpu(const at::Tensor& boxes, const at::Tensor& valid, at::IntArrayRef bounds,
                            double iou_threshold) {
  check_nms_segments_args(boxes, valid, bounds);
  const int64_t num_images = boxes.size(0), k = boxes.size(1);
  at::Tensor keep = at::zeros({num_images, k}, valid.options());
  if (num_images == 0 || k == 0) {
    return keep;
  }
  const at::Tensor b = boxes.contiguous();
  const at::Tensor v = valid.contiguous();
  bool* keep_ptr = keep.data_ptr<bool>();
  const bool* valid_ptr = v.data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "nms_segments_cpu", [&] {
    const scalar_t* box_ptr = b.data_ptr<scalar_t>();
    for (int64_t img = 0; img < num_images; ++img) {
      for (size_t s = 0; s + 1 < bounds.size(); ++s) {
        const int64_t start = img * k + bounds[s];
        nms_one_segment(box_ptr + start * 4, valid_ptr + start, bounds[s + 1] - bounds[s], iou_threshold,
                        keep_ptr + start);
      }
    }
  });
  return keep;
}

TORCH_LIBRARY_IMPL(detectron2, CPU, m) {
  m.impl("nms_segments", &nms_segments_cpu);
}

}  // namespace detectron2
