"""Small model-zoo models (ResNet-18 bodies, narrow heads) that script, trace and export
to ONNX in seconds on a CPU, with random weights that still give detections."""
import torch

from detectron2 import model_zoo
from detectron2.modeling import build_model

MASK_RCNN = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
MASK_RCNN_C4 = "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_3x.yaml"
RETINANET = "COCO-Detection/retinanet_R_50_FPN_3x.yaml"


def small_cfg(config_path: str):
    cfg = model_zoo.get_config(config_path)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (16,) * 2
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 100
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 5
    cfg.MODEL.RETINANET.NUM_CLASSES = 5
    # Random weights score low: keep every candidate so that outputs are not empty.
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    return cfg


def small_model(config_path: str, seed: int = 0, keypoint_on: bool = False) -> torch.nn.Module:
    cfg = small_cfg(config_path)
    cfg.MODEL.KEYPOINT_ON = keypoint_on
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def images(seed: int, sizes=((96, 128), (80, 112))):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, h, w, generator=g) * 255 for h, w in sizes]
