// Python-facing wrappers of the COCO evaluation core, for vision.cpp only (the one
// translation unit that pays for the pybind11 headers). They convert pycocotools'
// objects to the plain C++ types of cocoeval.h and back, and drop the GIL while the
// core runs.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cocoeval/cocoeval.h"

namespace detectron2 {
namespace COCOeval {
namespace python {

namespace py = pybind11;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

template <class T>
py::array_t<T> ToArray(const std::vector<T>& values, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  if (!values.empty()) {
    std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(T));
  }
  return out;
}

inline py::array_t<bool> ToBoolArray(const std::vector<uint8_t>& values, std::vector<py::ssize_t> shape) {
  py::array_t<bool> out(shape);
  bool* data = out.mutable_data();
  for (size_t n = 0; n < values.size(); ++n) {
    data[n] = values[n] != 0;
  }
  return out;
}

inline std::string TypeName(const py::handle& obj) {
  return py::str(py::type::handle_of(obj).attr("__name__"));
}

// pycocotools gives a (detections x ground truths) float array, or [] when either is empty.
inline IouMatrix ToIouMatrix(const py::handle& obj, size_t i, size_t c) {
  const std::string where = "COCOevalEvaluateImages: image_category_ious[" + std::to_string(i) + "][" +
                            std::to_string(c) + "]";
  DoubleArray array = DoubleArray::ensure(obj);
  if (!array) {
    PyErr_Clear();
    throw py::type_error(where + " must be a 2-D array of floats (detections x ground truths) or an empty list, got " +
                         TypeName(obj));
  }
  IouMatrix ious;
  if (array.ndim() == 1 && array.size() == 0) {
    return ious;
  }
  if (array.ndim() != 2) {
    throw py::value_error(where + " must be a 2-D array (detections x ground truths) or an empty list, got " +
                          std::to_string(array.ndim()) + " dimension(s)");
  }
  ious.rows = array.shape(0);
  ious.cols = array.shape(1);
  ious.values.assign(array.data(), array.data() + array.size());
  return ious;
}

inline std::vector<std::vector<IouMatrix>> ToIouMatrices(const py::handle& image_category_ious) {
  if (!py::isinstance<py::sequence>(image_category_ious)) {
    throw py::type_error("COCOevalEvaluateImages: argument 'image_category_ious' must be a list (per image) of lists "
                         "(per category) of IoU arrays, got " + TypeName(image_category_ious));
  }
  const auto images = py::reinterpret_borrow<py::sequence>(image_category_ious);
  std::vector<std::vector<IouMatrix>> out(images.size());
  for (size_t i = 0; i < out.size(); ++i) {
    py::object per_image = images[i];
    if (!py::isinstance<py::sequence>(per_image)) {
      throw py::type_error("COCOevalEvaluateImages: image_category_ious[" + std::to_string(i) +
                           "] must be a list (per category) of IoU arrays, got " + TypeName(per_image));
    }
    const auto categories = py::reinterpret_borrow<py::sequence>(per_image);
    out[i].reserve(categories.size());
    for (size_t c = 0; c < categories.size(); ++c) {
      out[i].push_back(ToIouMatrix(categories[c], i, c));
    }
  }
  return out;
}

inline std::vector<ImageEvaluation> EvaluateImages(
    const std::vector<std::vector<double>>& area_ranges,
    int64_t max_dets,
    const std::vector<double>& iou_thrs,
    const py::object& image_category_ious,
    const ImageCategoryInstances<InstanceAnnotation>& gt_instances,
    const ImageCategoryInstances<InstanceAnnotation>& dt_instances) {
  std::vector<std::array<double, 2>> ranges(area_ranges.size());
  for (size_t a = 0; a < area_ranges.size(); ++a) {
    if (area_ranges[a].size() != 2) {
      throw py::value_error("COCOevalEvaluateImages: argument 'area_ranges' must hold [min_area, max_area] pairs, "
                            "entry " + std::to_string(a) + " has " + std::to_string(area_ranges[a].size()) +
                            " values");
    }
    ranges[a] = {area_ranges[a][0], area_ranges[a][1]};
  }
  const std::vector<std::vector<IouMatrix>> ious = ToIouMatrices(image_category_ious);
  py::gil_scoped_release no_gil;
  return COCOeval::EvaluateImages(ranges, max_dets, iou_thrs, ious, gt_instances, dt_instances);
}

inline py::object RequireAttr(const py::object& params, const char* name) {
  if (!py::hasattr(params, name)) {
    throw py::type_error(std::string("COCOevalAccumulate: argument 'params' must be a pycocotools Params "
                                     "(with iouThrs, recThrs, maxDets, areaRng, catIds, imgIds, useCats), "
                                     "it has no attribute '") + name + "'");
  }
  return params.attr(name);
}

inline std::vector<double> ToVector(const py::object& obj, const char* name) {
  DoubleArray array = DoubleArray::ensure(obj);
  if (!array || array.ndim() != 1) {
    PyErr_Clear();
    throw py::type_error(std::string("COCOevalAccumulate: params.") + name + " must be a 1-D sequence of floats");
  }
  return std::vector<double>(array.data(), array.data() + array.size());
}

inline py::dict Accumulate(const py::object& params, const py::object& evaluations) {
  AccumulateParams p;
  p.iou_thresholds = ToVector(RequireAttr(params, "iouThrs"), "iouThrs");
  p.recall_thresholds = ToVector(RequireAttr(params, "recThrs"), "recThrs");
  p.max_detections = RequireAttr(params, "maxDets").cast<std::vector<int64_t>>();
  const bool use_categories = py::bool_(RequireAttr(params, "useCats"));
  p.num_categories = use_categories ? static_cast<int64_t>(py::len(RequireAttr(params, "catIds"))) : 1;
  p.num_area_ranges = static_cast<int64_t>(py::len(RequireAttr(params, "areaRng")));
  p.num_images = static_cast<int64_t>(py::len(RequireAttr(params, "imgIds")));

  if (!py::isinstance<py::sequence>(evaluations)) {
    throw py::type_error("COCOevalAccumulate: argument 'evaluations' must be the list returned by "
                         "COCOevalEvaluateImages, got " + TypeName(evaluations));
  }
  const auto items = py::reinterpret_borrow<py::sequence>(evaluations);
  std::vector<const ImageEvaluation*> pointers(items.size());
  std::vector<py::object> keep_alive(items.size());  // items of a generic sequence may be temporaries
  for (size_t n = 0; n < pointers.size(); ++n) {
    keep_alive[n] = items[n];
    if (!py::isinstance<ImageEvaluation>(keep_alive[n])) {
      throw py::type_error("COCOevalAccumulate: evaluations[" + std::to_string(n) +
                           "] must be an ImageEvaluation, got " + TypeName(keep_alive[n]));
    }
    pointers[n] = &keep_alive[n].cast<const ImageEvaluation&>();
  }

  AccumulateResult result;
  {
    py::gil_scoped_release no_gil;
    result = COCOeval::Accumulate(p, pointers);
  }
  const auto& n = result.counts;
  py::dict out;
  out["params"] = params;
  out["counts"] = py::cast(std::vector<int64_t>(n.begin(), n.end()));  // a list, as upstream
  out["date"] = result.date;
  out["precision"] = ToArray(result.precision, {static_cast<py::ssize_t>(result.precision.size())});
  out["recall"] = ToArray(result.recall, {static_cast<py::ssize_t>(result.recall.size())});
  out["scores"] = ToArray(result.scores, {static_cast<py::ssize_t>(result.scores.size())});
  return out;
}

// Read-only views of one evaluation, shaped like the matching entry of pycocotools' evalImgs.
inline void BindImageEvaluationViews(py::class_<ImageEvaluation>& cls) {
  using E = ImageEvaluation;
  auto per_threshold = [](const E& e, size_t n) -> std::vector<py::ssize_t> {
    return {static_cast<py::ssize_t>(e.num_iou_thresholds), static_cast<py::ssize_t>(n)};
  };
  cls.def_property_readonly("is_empty", [](const E& e) { return e.is_empty; })
      .def_property_readonly("detection_ids", [](const E& e) {
        return ToArray(e.detection_ids, {static_cast<py::ssize_t>(e.detection_ids.size())});
      })
      .def_property_readonly("detection_scores", [](const E& e) {
        return ToArray(e.detection_scores, {static_cast<py::ssize_t>(e.detection_scores.size())});
      })
      .def_property_readonly("ground_truth_ids", [](const E& e) {
        return ToArray(e.ground_truth_ids, {static_cast<py::ssize_t>(e.ground_truth_ids.size())});
      })
      .def_property_readonly("ground_truth_ignores", [](const E& e) {
        return ToBoolArray(e.ground_truth_ignores, {static_cast<py::ssize_t>(e.ground_truth_ignores.size())});
      })
      .def_property_readonly("detection_matches", [per_threshold](const E& e) {
        return ToArray(e.detection_matches, per_threshold(e, e.detection_ids.size()));
      })
      .def_property_readonly("ground_truth_matches", [per_threshold](const E& e) {
        return ToArray(e.ground_truth_matches, per_threshold(e, e.ground_truth_ids.size()));
      })
      .def_property_readonly("detection_ignores", [per_threshold](const E& e) {
        return ToBoolArray(e.detection_ignores, per_threshold(e, e.detection_ids.size()));
      });
}

}  // namespace python
}  // namespace COCOeval
}  // namespace detectron2
