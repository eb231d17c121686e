// Python-facing wrappers of the COCO evaluation core, for vision.cpp only (the one
// translation unit that pays for the pybind11 headers). They convert pycocotools'
// objects to the plain C++ types of cocoeval.h and back, and drop the GIL while the
// core runs.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cocoeval/cocoeval.h"

namespace detectron2 {
namespace COCOeval D2_COCOEVAL_HIDDEN {
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

// Where an argument item sits, e.g. "gt_instances[3][0][2]"; formatted only for errors.
struct Location {
  const char* arg;
  std::vector<size_t> index;
  std::string str() const {
    std::string out = arg;
    for (size_t k : index) {
      out += "[" + std::to_string(k) + "]";
    }
    return out;
  }
};

// Calls fn(index, item) for each item of a list or tuple (other sequences are copied once).
template <class Fn>
void ForEachItem(const py::handle& sequence, const Location& where, Fn&& fn) {
  if (!PySequence_Check(sequence.ptr()) || PyUnicode_Check(sequence.ptr()) || PyBytes_Check(sequence.ptr())) {
    throw py::type_error("COCOevalEvaluateImages: " + where.str() + " must be a list, got " + TypeName(sequence));
  }
  py::object items = py::reinterpret_steal<py::object>(PySequence_Fast(sequence.ptr(), "expected a sequence"));
  if (!items) {
    throw py::error_already_set();
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(items.ptr());
  PyObject** data = PySequence_Fast_ITEMS(items.ptr());
  for (Py_ssize_t k = 0; k < n; ++k) {
    fn(static_cast<size_t>(k), py::handle(data[k]));
  }
}

inline void ThrowIfPythonError() {
  if (PyErr_Occurred()) {
    throw py::error_already_set();
  }
}

// An InstanceAnnotation, or a COCO annotation dict as pycocotools holds them (keys id,
// area, and optionally score, iscrowd, ignore): reading the dicts here saves building
// one Python object per instance.
inline InstanceAnnotation ToInstance(const py::handle& obj, const Location& where) {
  if (PyDict_Check(obj.ptr())) {
    auto field = [&](const char* key, bool required) {
      PyObject* value = PyDict_GetItemString(obj.ptr(), key);  // borrowed
      if (value == nullptr && required) {
        throw py::value_error("COCOevalEvaluateImages: " + where.str() + " is a dict without the key '" + key + "'");
      }
      return value;
    };
    PyObject* id = field("id", true);
    PyObject* area = field("area", true);
    PyObject* score = field("score", false);
    PyObject* crowd = field("iscrowd", false);
    PyObject* ignore = field("ignore", false);
    const py::object id_int = py::reinterpret_steal<py::object>(PyNumber_Long(id));  // int(id), as upstream
    ThrowIfPythonError();
    const long long id_value = PyLong_AsLongLong(id_int.ptr());
    const double area_value = PyFloat_AsDouble(area);
    const double score_value = score ? PyFloat_AsDouble(score) : 0.0;
    const int crowd_value = crowd ? PyObject_IsTrue(crowd) : 0;
    const int ignore_value = ignore ? PyObject_IsTrue(ignore) : 0;
    ThrowIfPythonError();
    return InstanceAnnotation(id_value, score_value, area_value, crowd_value != 0, ignore_value != 0);
  }
  if (py::isinstance<InstanceAnnotation>(obj)) {
    return obj.cast<const InstanceAnnotation&>();
  }
  throw py::type_error("COCOevalEvaluateImages: " + where.str() +
                       " must be an InstanceAnnotation or a COCO annotation dict, got " + TypeName(obj));
}

inline ImageCategoryInstances<InstanceAnnotation> ToInstances(const py::handle& obj, const char* arg) {
  ImageCategoryInstances<InstanceAnnotation> out;
  Location where{arg, {}};
  ForEachItem(obj, where, [&](size_t i, py::handle per_image) {
    out.emplace_back();
    where.index = {i};
    ForEachItem(per_image, where, [&](size_t c, py::handle per_category) {
      out.back().emplace_back();
      auto& instances = out.back().back();
      where.index = {i, c};
      ForEachItem(per_category, where, [&](size_t n, py::handle instance) {
        where.index = {i, c, n};
        instances.push_back(ToInstance(instance, where));
      });
    });
  });
  return out;
}

inline std::vector<ImageEvaluation> EvaluateImages(
    const std::vector<std::vector<double>>& area_ranges,
    int64_t max_dets,
    const std::vector<double>& iou_thrs,
    const py::object& image_category_ious,
    const py::object& gt_instances_list,
    const py::object& dt_instances_list) {
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
  const auto gt_instances = ToInstances(gt_instances_list, "gt_instances");
  const auto dt_instances = ToInstances(dt_instances_list, "dt_instances");
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
  try {
    p.max_detections = RequireAttr(params, "maxDets").cast<std::vector<int64_t>>();
  } catch (const py::cast_error&) {
    throw py::type_error("COCOevalAccumulate: params.maxDets must be a list of ints");
  }
  const bool use_categories = py::bool_(RequireAttr(params, "useCats"));
  p.num_categories = use_categories ? static_cast<int64_t>(py::len(RequireAttr(params, "catIds"))) : 1;
  p.num_area_ranges = static_cast<int64_t>(py::len(RequireAttr(params, "areaRng")));
  p.num_images = static_cast<int64_t>(py::len(RequireAttr(params, "imgIds")));

  if (!PySequence_Check(evaluations.ptr()) || PyUnicode_Check(evaluations.ptr())) {
    throw py::type_error("COCOevalAccumulate: argument 'evaluations' must be the list returned by "
                         "COCOevalEvaluateImages, got " + TypeName(evaluations));
  }
  // The fast sequence holds a reference to every item while the GIL is released below.
  const py::object items = py::reinterpret_steal<py::object>(PySequence_Fast(evaluations.ptr(), "a sequence"));
  if (!items) {
    throw py::error_already_set();
  }
  const py::handle evaluation_type = py::type::of<ImageEvaluation>();
  const size_t count = static_cast<size_t>(PySequence_Fast_GET_SIZE(items.ptr()));
  PyObject** data = PySequence_Fast_ITEMS(items.ptr());
  std::vector<const ImageEvaluation*> pointers(count);
  for (size_t n = 0; n < count; ++n) {
    if (!PyObject_TypeCheck(data[n], reinterpret_cast<PyTypeObject*>(evaluation_type.ptr()))) {
      throw py::type_error("COCOevalAccumulate: evaluations[" + std::to_string(n) +
                           "] must be an ImageEvaluation, got " + TypeName(data[n]));
    }
    pointers[n] = &py::handle(data[n]).cast<const ImageEvaluation&>();
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

// Read-only fields and pickling (evaluators are pickled to gather them across processes).
inline void DefineInstanceAnnotation(py::class_<InstanceAnnotation>& cls) {
  using A = InstanceAnnotation;
  cls.def_readonly("id", &A::id)
      .def_readonly("score", &A::score)
      .def_readonly("area", &A::area)
      .def_readonly("is_crowd", &A::is_crowd)
      .def_readonly("ignore", &A::ignore)
      .def("__repr__", [](const A& a) {
        return "InstanceAnnotation(id=" + std::to_string(a.id) + ", score=" + std::string(py::repr(py::float_(a.score))) +
               ", area=" + std::string(py::repr(py::float_(a.area))) + ", is_crowd=" + (a.is_crowd ? "True" : "False") +
               ", ignore=" + (a.ignore ? "True" : "False") + ")";
      })
      .def(py::pickle(
          [](const A& a) { return py::make_tuple(a.id, a.score, a.area, a.is_crowd, a.ignore); },
          [](const py::tuple& t) {
            if (t.size() != 5) {
              throw py::value_error("InstanceAnnotation: pickled state must have 5 fields");
            }
            return A(t[0].cast<int64_t>(), t[1].cast<double>(), t[2].cast<double>(), t[3].cast<bool>(),
                     t[4].cast<bool>());
          }));
}

inline py::tuple ImageEvaluationState(const ImageEvaluation& e) {
  return py::make_tuple(e.num_iou_thresholds, e.is_empty, e.detection_ids, e.detection_scores, e.ground_truth_ids,
                        e.ground_truth_ignores, e.detection_matches, e.ground_truth_matches, e.detection_ignores);
}

inline ImageEvaluation ImageEvaluationFromState(const py::tuple& t) {
  if (t.size() != 9) {
    throw py::value_error("ImageEvaluation: pickled state must have 9 fields");
  }
  ImageEvaluation e;
  e.num_iou_thresholds = t[0].cast<int64_t>();
  e.is_empty = t[1].cast<bool>();
  e.detection_ids = t[2].cast<std::vector<int64_t>>();
  e.detection_scores = t[3].cast<std::vector<double>>();
  e.ground_truth_ids = t[4].cast<std::vector<int64_t>>();
  e.ground_truth_ignores = t[5].cast<std::vector<uint8_t>>();
  e.detection_matches = t[6].cast<std::vector<int64_t>>();
  e.ground_truth_matches = t[7].cast<std::vector<int64_t>>();
  e.detection_ignores = t[8].cast<std::vector<uint8_t>>();
  const size_t T = static_cast<size_t>(std::max<int64_t>(e.num_iou_thresholds, 0));
  const size_t D = e.detection_ids.size(), G = e.ground_truth_ids.size();
  if (e.detection_scores.size() != D || e.ground_truth_ignores.size() != G || e.detection_matches.size() != T * D ||
      e.ground_truth_matches.size() != T * G || e.detection_ignores.size() != T * D) {
    throw py::value_error("ImageEvaluation: pickled state has inconsistent sizes");
  }
  return e;
}

// Read-only views of one evaluation, shaped like the matching entry of pycocotools' evalImgs.
inline void DefineImageEvaluation(py::class_<ImageEvaluation>& cls) {
  using E = ImageEvaluation;
  cls.def(py::pickle(&ImageEvaluationState, &ImageEvaluationFromState));
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
