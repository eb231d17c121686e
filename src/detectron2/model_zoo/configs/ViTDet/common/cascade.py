# Turns the Mask R-CNN roi_heads of a ViTDet config into 3-stage Cascade R-CNN heads
# (IoU 0.5 / 0.6 / 0.7) with LN 4conv1fc box heads, in place.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers


def to_cascade(roi_heads, **predictor_kwargs) -> None:
    """Replace box_head / box_predictor / proposal_matcher by their three cascade stages."""
    for k in ("box_head", "box_predictor", "proposal_matcher"):
        roi_heads.pop(k)
    roi_heads.update(
        _target_=CascadeROIHeads,
        box_heads=[
            L(FastRCNNConvFCHead)(
                input_shape=ShapeSpec(channels=256, height=7, width=7),
                conv_dims=[256, 256, 256, 256],
                fc_dims=[1024],
                conv_norm="LN",
            )
            for _ in range(3)
        ],
        box_predictors=[
            L(FastRCNNOutputLayers)(
                input_shape=ShapeSpec(channels=1024),
                box2box_transform=L(Box2BoxTransform)(weights=(w1, w1, w2, w2)),
                num_classes="${...num_classes}",
                cls_agnostic_bbox_reg=True,
                **predictor_kwargs,
            )
            for (w1, w2) in [(10, 5), (20, 10), (30, 15)]
        ],
        proposal_matchers=[
            L(Matcher)(thresholds=[th], labels=[0, 1], allow_low_quality_matches=False) for th in [0.5, 0.6, 0.7]
        ],
    )
