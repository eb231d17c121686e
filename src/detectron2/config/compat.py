"""Conversion between config versions.

Each version step ``k-1 -> k`` has a converter ``ConverterV<k>`` with ``upgrade`` and
``downgrade`` class methods that edit a config in place. Most steps are pure key renames.
The history of the config keys:

* v1: ``MODEL.RPN_HEAD.NAME`` became ``MODEL.RPN.HEAD_NAME``.
* v2: many renames (below); anchor settings moved from ``MODEL.RPN`` / ``MODEL.RETINANET``
  to ``MODEL.ANCHOR_GENERATOR``.

Only merge_from_file needs this: to read an old file, the defaults are downgraded to its
version, the file is merged, and the result is upgraded.
"""
import logging
from typing import List, Optional, Sequence, Tuple

from .config import CfgNode as CN
from .defaults import _C

__all__ = ["upgrade_config", "downgrade_config", "guess_version"]


def upgrade_config(cfg: CN, to_version: Optional[int] = None) -> CN:
    """A copy of ``cfg`` converted up to ``to_version`` (default: the latest version)."""
    cfg = cfg.clone()
    if to_version is None:
        to_version = _C.VERSION
    if cfg.VERSION > to_version:
        raise ValueError(f"Cannot upgrade a v{cfg.VERSION} config to the older v{to_version}")
    for k in range(cfg.VERSION, to_version):
        _CONVERTERS[k + 1].upgrade(cfg)
        cfg.VERSION = k + 1
    return cfg


def downgrade_config(cfg: CN, to_version: int) -> CN:
    """A copy of ``cfg`` converted down to ``to_version``.

    Only key renames are undone: a config that uses new features is not turned into one
    that older code can run; the result just has the old key layout.
    """
    cfg = cfg.clone()
    if cfg.VERSION < to_version:
        raise ValueError(f"Cannot downgrade a v{cfg.VERSION} config to the newer v{to_version}")
    for k in range(cfg.VERSION, to_version, -1):
        _CONVERTERS[k].downgrade(cfg)
        cfg.VERSION = k - 1
    return cfg


def guess_version(cfg: CN, filename: str) -> int:
    """The version of a config that states none, told by keys only old versions have."""
    logger = logging.getLogger(__name__)

    def _has(name: str) -> bool:
        cur = cfg
        for n in name.split("."):
            if not isinstance(cur, dict) or n not in cur:
                return False
            cur = cur[n]
        return True

    if _has("MODEL.WEIGHT") or _has("TEST.AUG_ON"):
        logger.warning(f"Config '{filename}' has no VERSION. Assuming it to be v1.")
        return 1
    logger.warning(f"Config '{filename}' has no VERSION. Assuming it to be compatible with latest v{_C.VERSION}.")
    return _C.VERSION


def _get(cfg: CN, keys: Sequence[str]):
    cur = cfg
    for k in keys:
        cur = cur[k]
    return cur


def _set(cfg: CN, keys: Sequence[str], value) -> None:
    cur = cfg
    for k in keys[:-1]:
        if k not in cur:
            cur[k] = CN()
        cur = cur[k]
    cur[keys[-1]] = value


def _delete(cfg: CN, keys: Sequence[str]) -> None:
    """Delete a key, and its parent nodes that become empty."""
    parent = _get(cfg, keys[:-1])
    del parent[keys[-1]]
    if len(parent) == 0 and len(keys) > 1:
        _delete(cfg, keys[:-1])


def _rename(cfg: CN, old: str, new: str) -> None:
    old_keys, new_keys = old.split("."), new.split(".")
    _set(cfg, new_keys, _get(cfg, old_keys))
    _delete(cfg, old_keys)


class _RenameConverter:
    """A version step that only renames keys: (old name, new name) pairs."""

    RENAME: List[Tuple[str, str]] = []

    @classmethod
    def upgrade(cls, cfg: CN) -> None:
        for old, new in cls.RENAME:
            _rename(cfg, old, new)

    @classmethod
    def downgrade(cls, cfg: CN) -> None:
        for old, new in reversed(cls.RENAME):
            _rename(cfg, new, old)


class ConverterV1(_RenameConverter):
    RENAME = [("MODEL.RPN_HEAD.NAME", "MODEL.RPN.HEAD_NAME")]


class ConverterV2(_RenameConverter):
    """v1 -> v2: clearer names for loss weights, inference thresholds and test-time
    augmentation, and one anchor generator config shared by RPN and RetinaNet."""

    RENAME = [
        ("MODEL.WEIGHT", "MODEL.WEIGHTS"),
        ("MODEL.PANOPTIC_FPN.SEMANTIC_LOSS_SCALE", "MODEL.SEM_SEG_HEAD.LOSS_WEIGHT"),
        ("MODEL.PANOPTIC_FPN.RPN_LOSS_SCALE", "MODEL.RPN.LOSS_WEIGHT"),
        ("MODEL.PANOPTIC_FPN.INSTANCE_LOSS_SCALE", "MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT"),
        ("MODEL.PANOPTIC_FPN.COMBINE_ON", "MODEL.PANOPTIC_FPN.COMBINE.ENABLED"),
        ("MODEL.PANOPTIC_FPN.COMBINE_OVERLAP_THRESHOLD", "MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH"),
        ("MODEL.PANOPTIC_FPN.COMBINE_STUFF_AREA_LIMIT", "MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT"),
        (
            "MODEL.PANOPTIC_FPN.COMBINE_INSTANCES_CONFIDENCE_THRESHOLD",
            "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH",
        ),
        ("MODEL.ROI_HEADS.SCORE_THRESH", "MODEL.ROI_HEADS.SCORE_THRESH_TEST"),
        ("MODEL.ROI_HEADS.NMS", "MODEL.ROI_HEADS.NMS_THRESH_TEST"),
        ("MODEL.RETINANET.INFERENCE_SCORE_THRESHOLD", "MODEL.RETINANET.SCORE_THRESH_TEST"),
        ("MODEL.RETINANET.INFERENCE_TOPK_CANDIDATES", "MODEL.RETINANET.TOPK_CANDIDATES_TEST"),
        ("MODEL.RETINANET.INFERENCE_NMS_THRESHOLD", "MODEL.RETINANET.NMS_THRESH_TEST"),
        ("TEST.DETECTIONS_PER_IMG", "TEST.DETECTIONS_PER_IMAGE"),
        ("TEST.AUG_ON", "TEST.AUG.ENABLED"),
        ("TEST.AUG_MIN_SIZES", "TEST.AUG.MIN_SIZES"),
        ("TEST.AUG_MAX_SIZE", "TEST.AUG.MAX_SIZE"),
        ("TEST.AUG_FLIP", "TEST.AUG.FLIP"),
    ]

    @classmethod
    def upgrade(cls, cfg: CN) -> None:
        super().upgrade(cfg)
        # v1 had anchors in both heads; the meta-architecture tells which one was used.
        used, unused = ("RETINANET", "RPN") if cfg.MODEL.META_ARCHITECTURE == "RetinaNet" else ("RPN", "RETINANET")
        _rename(cfg, f"MODEL.{used}.ANCHOR_ASPECT_RATIOS", "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS")
        _rename(cfg, f"MODEL.{used}.ANCHOR_SIZES", "MODEL.ANCHOR_GENERATOR.SIZES")
        del cfg["MODEL"][unused]["ANCHOR_SIZES"]
        del cfg["MODEL"][unused]["ANCHOR_ASPECT_RATIOS"]
        del cfg["MODEL"]["RETINANET"]["ANCHOR_STRIDES"]  # never read by any version

    @classmethod
    def downgrade(cls, cfg: CN) -> None:
        super().downgrade(cfg)
        _rename(cfg, "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "MODEL.RPN.ANCHOR_ASPECT_RATIOS")
        _rename(cfg, "MODEL.ANCHOR_GENERATOR.SIZES", "MODEL.RPN.ANCHOR_SIZES")
        cfg.MODEL.RETINANET.ANCHOR_ASPECT_RATIOS = cfg.MODEL.RPN.ANCHOR_ASPECT_RATIOS
        cfg.MODEL.RETINANET.ANCHOR_SIZES = cfg.MODEL.RPN.ANCHOR_SIZES
        cfg.MODEL.RETINANET.ANCHOR_STRIDES = []


_CONVERTERS = {1: ConverterV1, 2: ConverterV2}
