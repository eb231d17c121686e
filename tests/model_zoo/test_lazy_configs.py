"""The Python (LazyConfig) models of the zoo build the same networks as the matching YAML
configs: identical state_dict keys and shapes, so one checkpoint serves both."""
import pytest
import torch

from detectron2 import model_zoo
from detectron2.config import instantiate

PAIRS = [
    ("common/models/mask_rcnn_fpn.py", "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"),
    ("common/models/mask_rcnn_c4.py", "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml"),
    ("common/models/keypoint_rcnn_fpn.py", "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml"),
    ("common/models/cascade_rcnn.py", "Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml"),
    ("common/models/retinanet.py", "COCO-Detection/retinanet_R_50_FPN_1x.yaml"),
]


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.slow  # ten ResNet-50 detectors
@pytest.mark.parametrize("py, yaml", PAIRS)
def test_lazy_model_matches_yaml_model(py, yaml):
    from detectron2.modeling import build_model

    lazy = model_zoo.get_config(py)
    lazy_model = instantiate(lazy.model)
    cfg = model_zoo.get_config(yaml)
    cfg.MODEL.DEVICE = "cpu"
    yaml_model = build_model(cfg)
    assert type(lazy_model) is type(yaml_model)
    assert _shapes(lazy_model) == _shapes(yaml_model)
    # and it runs
    lazy_model.eval()
    with torch.no_grad():
        out = lazy_model([{"image": torch.rand(3, 64, 96) * 255, "height": 64, "width": 96}])
    assert out[0]["instances"].image_size == (64, 96)


def test_lazy_hyperparameters_match_the_yaml_ones():
    model = model_zoo.get_config("common/models/keypoint_rcnn_fpn.py").model
    assert model.roi_heads.num_classes == 1 and "mask_head" not in model.roi_heads
    assert tuple(model.proposal_generator.post_nms_topk) == (1500, 1000)
    assert model.roi_heads.box_predictor.smooth_l1_beta == 0.5
    cascade = model_zoo.get_config("common/models/cascade_rcnn.py").model.roi_heads
    assert [m.thresholds for m in cascade.proposal_matchers] == [[0.5], [0.6], [0.7]]
    assert [list(p.box2box_transform.weights) for p in cascade.box_predictors] == [
        [10, 10, 5, 5], [20, 20, 10, 10], [30, 30, 15, 15]]
