"""Old import location of the COCO registration functions, kept for compatibility."""
from .coco import register_coco_instances  # noqa: F401
from .coco_panoptic import register_coco_panoptic_separated  # noqa: F401
