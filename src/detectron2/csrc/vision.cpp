// The Python module detectron2._C.
//
// Torch operators (torch.ops.detectron2.*) register themselves from their own op
// folders through TORCH_LIBRARY_FRAGMENT; this file only binds the plain module
// functions that upstream exposes through pybind11. It is the one translation unit
// that includes torch/extension.h (slow to compile).
#include <torch/extension.h>

#include "cocoeval/cocoeval_py.h"
#include "ops/deform_conv/deform_conv.h"
#include "version.h"

namespace detectron2 {

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "detectron2 compiled ops (CPU and CUDA kernels, COCO evaluation core)";

  m.def("get_compiler_version", &get_compiler_version, "Compiler that built this extension");
  m.def("get_cuda_version", &get_cuda_version, "CUDA runtime version this extension was built with");
  m.def("has_cuda", &has_cuda, "Whether the CUDA kernels were compiled in");

  // --- deformable convolution (ops/deform_conv) ---
  m.def("deform_conv_forward", &deform_conv_forward, "DeformConv forward (writes `output`)");
  m.def("deform_conv_backward_input", &deform_conv_backward_input,
        "DeformConv gradients w.r.t. input and offset (writes `gradInput`, `gradOffset`)");
  m.def("deform_conv_backward_filter", &deform_conv_backward_filter,
        "DeformConv gradient w.r.t. the weight (accumulates scale * grad into `gradWeight`)");
  m.def("modulated_deform_conv_forward", &modulated_deform_conv_forward,
        "ModulatedDeformConv forward (writes `output`)");
  m.def("modulated_deform_conv_backward", &modulated_deform_conv_backward,
        "ModulatedDeformConv backward (writes grad_input/grad_offset/grad_mask, accumulates grad_weight/grad_bias)");
  // The forwards of the Python layers (output allocated in C++, one call from Python).
  m.def("deform_conv_layer", &deform_conv_layer, pybind11::arg("input"), pybind11::arg("offset"),
        pybind11::arg("weight"), pybind11::arg("stride_h"), pybind11::arg("stride_w"), pybind11::arg("pad_h"),
        pybind11::arg("pad_w"), pybind11::arg("dilation_h"), pybind11::arg("dilation_w"), pybind11::arg("groups"),
        pybind11::arg("deformable_groups"), pybind11::arg("im2col_step"),
        "DeformConv forward: (output, the im2col step used)");
  m.def("modulated_deform_conv_layer", &modulated_deform_conv_layer, pybind11::arg("input"), pybind11::arg("offset"),
        pybind11::arg("mask"), pybind11::arg("weight"), pybind11::arg("bias"), pybind11::arg("stride_h"),
        pybind11::arg("stride_w"), pybind11::arg("pad_h"), pybind11::arg("pad_w"), pybind11::arg("dilation_h"),
        pybind11::arg("dilation_w"), pybind11::arg("groups"), pybind11::arg("deformable_groups"),
        "ModulatedDeformConv forward (bias may be None)");
  // --- COCO evaluation core (cocoeval) ---
  {
    namespace coco = COCOeval;
    pybind11::class_<coco::InstanceAnnotation> instance_annotation(m, "InstanceAnnotation");
    instance_annotation.def(pybind11::init<int64_t, double, double, bool, bool>(), pybind11::arg("id"),
                            pybind11::arg("score"), pybind11::arg("area"), pybind11::arg("is_crowd"),
                            pybind11::arg("ignore"));
    coco::python::DefineInstanceAnnotation(instance_annotation);
    pybind11::class_<coco::ImageEvaluation> image_evaluation(m, "ImageEvaluation");
    image_evaluation.def(pybind11::init<>());
    coco::python::DefineImageEvaluation(image_evaluation);
    m.def("COCOevalEvaluateImages", &coco::python::EvaluateImages, pybind11::arg("area_ranges"),
          pybind11::arg("max_dets"), pybind11::arg("iou_thrs"), pybind11::arg("image_category_ious"),
          pybind11::arg("gt_instances"), pybind11::arg("dt_instances"),
          "pycocotools' evaluateImg for every (category, area range, image), in evalImgs order");
    m.def("COCOevalAccumulate", &coco::python::Accumulate, pybind11::arg("params"), pybind11::arg("evaluations"),
          "pycocotools' accumulate: dict of params, counts, date and flat precision/recall/scores arrays");
  }
}

}  // namespace detectron2
