#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <torch/library.h>

#include <vector>

#include "ops/box_iou_rotated/box_iou_rotated_utils.h"
#include "ops/nms_rotated/nms_rotated.h"

namespace detectron2 {

namespace {

// Greedy NMS over boxes visited in `order`; returns the number of kept indices.
template <typename T>
int64_t nms_kernel(const T* boxes, const int64_t* order, int64_t n, double iou_threshold, int64_t* keep) {
  std::vector<char> suppressed(n, 0);  // by original index
  int64_t num_kept = 0;
  for (int64_t a = 0; a < n; ++a) {
    const int64_t i = order[a];
    if (suppressed[i]) {
      continue;
    }
    keep[num_kept++] = i;
    for (int64_t b = a + 1; b < n; ++b) {
      const int64_t j = order[b];
      if (!suppressed[j] && rotated::single_box_iou(boxes + i * 5, boxes + j * 5) > iou_threshold) {
        suppressed[j] = 1;
      }
    }
  }
  return num_kept;
}

}  // namespace

at::Tensor nms_rotated_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_rotated_args(boxes, scores, /*allow_half=*/false);
  const int64_t n = boxes.size(0);
  at::Tensor keep = at::empty({n}, boxes.options().dtype(at::kLong));
  if (n == 0) {
    return keep;
  }
  const at::Tensor b = boxes.contiguous();
  // Stable: equal scores keep their input order.
  const at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  int64_t num_kept = 0;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "nms_rotated_cpu", [&] {
    num_kept = nms_kernel(b.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), n, iou_threshold, keep.data_ptr<int64_t>());
  });
  return keep.narrow(0, 0, num_kept);
}

TORCH_LIBRARY_IMPL(detectron2, CPU, m) {
  m.impl("nms_rotated", &nms_rotated_cpu);
}

}  // namespace detectron2
