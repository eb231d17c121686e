"""The tracker interface and its registry."""
from typing import Any, Dict

from detectron2.config import configurable
from detectron2.structures import Instances
from detectron2.utils.registry import Registry

__all__ = ["TRACKER_HEADS_REGISTRY", "BaseTracker", "build_tracker_head"]

TRACKER_HEADS_REGISTRY = Registry("TRACKER_HEADS")
TRACKER_HEADS_REGISTRY.__doc__ = """
Registry for trackers: classes that take the Instances of each video frame in turn and
give every instance a persistent ``ID``. Built from ``cfg.TRACKER_HEADS.TRACKER_NAME``.
"""


class BaseTracker:
    """A tracker: call :meth:`update` with each frame's predictions, in order."""

    @configurable
    def __init__(self, **kwargs: Any):
        self._prev_instances = None  # the tracked instances of the previous frame
        self._matched_idx = set()  # indices of this frame's instances matched so far
        self._matched_ID = set()  # IDs of previous instances matched so far
        self._untracked_prev_idx = set()  # previous instances not matched (yet)
        self._id_count = 0  # the next new ID

    @classmethod
    def from_config(cls, cfg: Any) -> Dict[str, Any]:
        raise TypeError(f"{cls.__name__}.from_config: BaseTracker is abstract; use a registered tracker")

    def update(self, predictions: Instances) -> Instances:
        """Give each instance of this frame an ``ID`` (and ``ID_period``: the number of
        consecutive frames it was tracked, ``lost_frame_count``); returns the Instances."""
        raise TypeError(f"{type(self).__name__}.update: BaseTracker is abstract; use a subclass")


def build_tracker_head(cfg: Any) -> BaseTracker:
    """The tracker named by ``cfg.TRACKER_HEADS.TRACKER_NAME``, built from cfg."""
    name = cfg.TRACKER_HEADS.TRACKER_NAME
    return TRACKER_HEADS_REGISTRY.get(name)(cfg)
