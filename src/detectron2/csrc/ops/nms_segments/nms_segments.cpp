#include "ops/nms_segments/nms_segments.h"

#include <torch/library.h>

#include "common/checks.h"

namespace detectron2 {

void check_nms_segments_args(const at::Tensor& boxes, const at::Tensor& valid, at::IntArrayRef bounds) {
  constexpr const char* op = "nms_segments";
  checks::dim(op, "boxes", boxes, 3, "(B, K, 4)");
  checks::size(op, "boxes", boxes, 2, 4, "(B, K, 4)");
  checks::floating(op, "boxes", boxes, /*allow_half=*/false);
  checks::dim(op, "valid", valid, 2, "(B, K)");
  TORCH_CHECK_VALUE(
      valid.size(0) == boxes.size(0) && valid.size(1) == boxes.size(1), op,
      ": argument 'valid' must have shape (B, K) = (", boxes.size(0), ", ", boxes.size(1), "), got shape ",
      checks::shape_of(valid));
  TORCH_CHECK_TYPE(valid.scalar_type() == at::kBool, op, ": argument 'valid' must be a bool tensor, got ",
                   valid.scalar_type());
  checks::same_device(op, "valid", valid, "boxes", boxes);
  const int64_t num_segments = static_cast<int64_t>(bounds.size()) - 1;
  TORCH_CHECK_VALUE(
      num_segments >= 1 && num_segments <= kMaxNmsSegments, op, ": argument 'bounds' must hold between 2 and ",
      kMaxNmsSegments + 1, " segment boundaries, got ", bounds.size());
  TORCH_CHECK_VALUE(bounds[0] == 0 && bounds[num_segments] == boxes.size(1), op,
                    ": argument 'bounds' must start at 0 and end at K = ", boxes.size(1), ", got ", bounds);
  for (int64_t s = 0; s < num_segments; ++s) {
    TORCH_CHECK_VALUE(bounds[s] <= bounds[s + 1], op, ": argument 'bounds' must be non-decreasing, got ", bounds);
  }
}

TORCH_LIBRARY_FRAGMENT(detectron2, m) {
  m.def("nms_segments(Tensor boxes, Tensor valid, int[] bounds, float iou_threshold) -> Tensor");
}

}  // namespace detectron2
