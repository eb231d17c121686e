"""The model zoo: the configs of upstream's published models, shipped in the package, and
the URLs of their trained checkpoints.

    from detectron2 import model_zoo
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
"""
from .model_zoo import get, get_checkpoint_url, get_config, get_config_file

__all__ = ["get_checkpoint_url", "get", "get_config_file", "get_config"]
