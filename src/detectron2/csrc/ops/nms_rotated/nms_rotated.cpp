#include "ops/nms_rotated/nms_rotated.h"

#include <torch/library.h>

#include "common/checks.h"

namespace detectron2 {

void check_nms_rotated_args(const at::Tensor& boxes, const at::Tensor& scores, bool allow_half) {
  constexpr const char* op = "nms_rotated";
  checks::dim(op, "boxes", boxes, 2, "(N, 5)");
  checks::size(op, "boxes", boxes, 1, 5, "(N, 5)");
  checks::dim(op, "scores", scores, 1, "(N,)");
  TORCH_CHECK_VALUE(
      scores.size(0) == boxes.size(0), op, ": argument 'scores' must have shape (N,) with N = boxes.size(0) = ",
      boxes.size(0), ", got shape ", checks::shape_of(scores));
  checks::same_device(op, "scores", scores, "boxes", boxes);
  checks::floating(op, "boxes", boxes, allow_half);
  checks::same_dtype(op, "scores", scores, "boxes", boxes);
}

TORCH_LIBRARY_FRAGMENT(detectron2, m) {
  m.def("nms_rotated(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
}

}  // namespace detectron2
