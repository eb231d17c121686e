"""Research projects shipped with the package, importable as upstream's wheel has them:
``detectron2.projects.point_rend``, ``detectron2.projects.deeplab`` and
``detectron2.projects.panoptic_deeplab``. Each carries its configs under ``configs/``."""
import os

__all__ = ["get_project_config_file"]

_PROJECT_DIRS = {"PointRend": "point_rend", "DeepLab": "deeplab", "Panoptic-DeepLab": "panoptic_deeplab"}


def get_project_config_file(project: str, config_path: str) -> str:
    """Path of a config shipped with a project, e.g.
    ``get_project_config_file("PointRend", "InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml")``.
    ``project`` is upstream's folder name (PointRend, DeepLab, Panoptic-DeepLab) or the package name."""
    package = _PROJECT_DIRS.get(project, project)
    if package not in _PROJECT_DIRS.values():
        raise ValueError(f"project must be one of {sorted(_PROJECT_DIRS)}, got {project!r}")
    path = os.path.join(os.path.dirname(__file__), package, "configs", config_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{project} has no config {config_path!r} (looked at {path})")
    return path
