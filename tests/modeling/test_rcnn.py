"""GeneralizedRCNN and ProposalNetwork on a toy backbone: most tests use a small fake
ROI head with upstream's interface (to test the meta-architecture alone); a tiny Mask
R-CNN with the real StandardROIHeads runs end to end."""
import sys
import types

import pytest
import torch
from rcnn_toys import ToyBackbone, toy_cfg, toy_inputs
from torch import nn

from detectron2.modeling import (
    META_ARCH_REGISTRY,
    GeneralizedRCNN,
    ProposalNetwork,
    StandardROIHeads,
    batched_matching,
    build_model,
)
from detectron2.modeling.meta_arch import rcnn as rcnn_module
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage
from detectron2.utils.testing import DispatchCounter

PIXEL_MEAN = [103.53, 116.28, 123.675]
PIXEL_STD = [57.375, 57.12, 58.395]


class FakeROIHeads(nn.Module):
    """Upstream's ROIHeads call interface: the top 5 proposals become detections."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.score = nn.Linear(channels, 1)
        self.seen_proposals = None

    def forward(self, images, features, proposals, targets=None):
        self.seen_proposals = proposals
        pooled = features["p3"].mean(dim=(2, 3))  # (N, C)
        if self.training:
            if targets is None:
                raise ValueError("FakeROIHeads needs targets in training")
            return [], {"loss_fake": self.score(pooled).pow(2).mean()}
        results = []
        for p in proposals:
            r = Instances(p.image_size)
            r.pred_boxes = Boxes(p.proposal_boxes.tensor[:5].clone())
            r.scores = p.objectness_logits[:5].sigmoid()
            r.pred_classes = torch.zeros(len(r.scores), dtype=torch.int64, device=r.scores.device)
            results.append(r)
        return results, {}

    def forward_with_given_boxes(self, features, instances):
        for inst in instances:
            inst.refined = torch.ones(len(inst), device=inst.pred_boxes.device)
        return instances


def _model(vis_period=0, proposal_generator="rpn", training=True, backbone=None):
    torch.manual_seed(0)
    backbone = backbone or ToyBackbone()
    pg = RPN(toy_cfg(), backbone.output_shape()) if proposal_generator == "rpn" else None
    model = GeneralizedRCNN(
        backbone=backbone,
        proposal_generator=pg,
        roi_heads=FakeROIHeads(),
        pixel_mean=PIXEL_MEAN,
        pixel_std=PIXEL_STD,
        input_format="BGR",
        vis_period=vis_period,
    )
    return model.train(training)


def test_training_returns_all_losses():
    model = _model()
    with EventStorage():
        losses = model(toy_inputs())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_fake"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.stem.weight.grad.abs().sum() > 0
    assert model.proposal_generator.rpn_head.anchor_deltas.weight.grad.abs().sum() > 0
    # Proposals reach the ROI heads on the training top-k.
    assert all(len(p) <= 50 for p in model.roi_heads.seen_proposals)


def test_training_without_instances_raises():
    model = _model()
    with EventStorage(), pytest.raises(ValueError, match="instances"):
        model(toy_inputs(with_instances=False))


def test_inference_rescales_to_requested_size():
    model = _model(training=False)
    inputs = toy_inputs(with_instances=False)
    with torch.no_grad():
        raw = model.inference(inputs, do_postprocess=False)
        outputs = model(inputs)
    assert [set(o) for o in outputs] == [{"instances"}, {"instances"}]
    first, second = outputs[0]["instances"], outputs[1]["instances"]
    assert first.image_size == (128, 160)  # asked for twice the input size
    assert second.image_size == (56, 48)  # no height/width: the input size
    assert raw[0].image_size == (64, 80)
    torch.testing.assert_close(first.pred_boxes.tensor, raw[0].pred_boxes.tensor * 2)
    assert set(first.get_fields()) == {"pred_boxes", "scores", "pred_classes"}


def test_inference_with_detected_instances():
    model = _model(training=False)
    det = Instances((64, 80), pred_boxes=Boxes(torch.tensor([[1.0, 2.0, 30.0, 40.0]])), pred_classes=torch.tensor([0]))
    det2 = Instances((56, 48), pred_boxes=Boxes(torch.tensor([[1.0, 2.0, 20.0, 20.0]])), pred_classes=torch.tensor([0]))
    with torch.no_grad():
        out = model.inference(toy_inputs(with_instances=False), detected_instances=[det, det2])
    assert out[0]["instances"].refined.tolist() == [1.0]
    assert out[0]["instances"].pred_boxes.tensor.tolist() == [[2.0, 4.0, 60.0, 80.0]]


def test_inference_in_training_mode_raises():
    with pytest.raises(RuntimeError, match="eval"):
        _model().inference(toy_inputs(with_instances=False))


def test_preprocess_image_normalizes_and_pads():
    model = _model()
    inputs = toy_inputs(with_instances=False)
    images = model.preprocess_image(inputs)
    assert images.image_sizes == [(64, 80), (56, 48)]
    assert images.tensor.shape == (2, 3, 64, 80)  # multiples of size_divisibility 8
    expected = (inputs[1]["image"][:, 5, 7] - torch.tensor(PIXEL_MEAN)) / torch.tensor(PIXEL_STD)
    torch.testing.assert_close(images.tensor[1, :, 5, 7], expected)
    assert float(images.tensor[1, :, 60:, :].abs().sum()) == 0.0  # zero padding

    odd = [{"image": torch.rand(3, 30, 41)}]
    assert model.preprocess_image(odd).tensor.shape == (1, 3, 32, 48)


class _SquareBackbone(ToyBackbone):
    @property
    def padding_constraints(self):
        return {"square_size": 96}


def test_preprocess_image_honours_padding_constraints():
    model = _model(backbone=_SquareBackbone())
    images = model.preprocess_image(toy_inputs(with_instances=False))
    assert images.tensor.shape == (2, 3, 96, 96)


def test_bad_inputs_raise_clear_errors():
    model = _model(training=False)
    with pytest.raises(ValueError, match=r"batched_inputs\[0\]\['image'\]"):
        model([{"image": torch.rand(1, 32, 32)}])
    with pytest.raises(ValueError, match=r"batched_inputs\[1\]"):
        model([{"image": torch.rand(3, 32, 32)}, {"img": torch.rand(3, 32, 32)}])
    with pytest.raises(TypeError, match="list of dicts"):
        model({"image": torch.rand(3, 32, 32)})
    with pytest.raises(ValueError, match="input_format"):
        GeneralizedRCNN(
            backbone=ToyBackbone(), proposal_generator=None, roi_heads=FakeROIHeads(),
            pixel_mean=PIXEL_MEAN, pixel_std=PIXEL_STD, input_format=None, vis_period=10,
        )
    with pytest.raises(ValueError, match="pixel_mean"):
        GeneralizedRCNN(
            backbone=ToyBackbone(), proposal_generator=None, roi_heads=FakeROIHeads(),
            pixel_mean=PIXEL_MEAN, pixel_std=[1.0],
        )


def test_precomputed_proposals():
    model = _model(proposal_generator=None, training=False)
    inputs = toy_inputs(with_instances=False)
    for x, (h, w) in zip(inputs, [(64, 80), (56, 48)]):
        x["proposals"] = Instances(
            (h, w), proposal_boxes=Boxes(torch.tensor([[1.0, 1.0, 9.0, 9.0]])), objectness_logits=torch.tensor([3.0])
        )
    with torch.no_grad():
        out = model(inputs)
    assert out[1]["instances"].pred_boxes.tensor.tolist() == [[1.0, 1.0, 9.0, 9.0]]
    for x in inputs:
        del x["proposals"]
    with pytest.raises(ValueError, match="proposals"):
        model(inputs)


def test_state_dict_keys_and_buffers():
    model = _model()
    keys = set(model.state_dict().keys())
    assert "proposal_generator.rpn_head.conv.weight" in keys
    assert "backbone.stem.weight" in keys and "roi_heads.score.weight" in keys
    assert "pixel_mean" not in keys and "pixel_std" not in keys  # come from the config
    assert model.pixel_mean.shape == (3, 1, 1)
    assert model.device == torch.device("cpu")


def test_visualization_only_when_vis_period_is_positive(monkeypatch):
    calls = []
    monkeypatch.setattr(GeneralizedRCNN, "visualize_training", lambda self, inputs, props: calls.append(len(props)))
    with EventStorage() as storage:
        _model(vis_period=0)(toy_inputs())
        assert calls == []
        model = _model(vis_period=2)
        model(toy_inputs())  # iteration 0
        storage.step()
        model(toy_inputs())  # iteration 1: skipped
    assert calls == [2]


class _FakeVisualizer:
    """Stand-in for detectron2.utils.visualizer.Visualizer: records the boxes it draws."""

    drawn = []

    def __init__(self, img, metadata=None):
        self.img = img

    def overlay_instances(self, boxes=None):
        _FakeVisualizer.drawn.append(len(boxes))
        return self

    def get_image(self):
        return self.img


def test_visualize_training_stores_gt_beside_proposals(monkeypatch):
    vis = types.ModuleType("detectron2.utils.visualizer")
    vis.Visualizer = _FakeVisualizer
    utils = types.ModuleType("detectron2.data.detection_utils")
    utils.convert_image_to_rgb = lambda img, fmt: img.numpy()[:, :, ::-1]
    monkeypatch.setitem(sys.modules, "detectron2.utils.visualizer", vis)
    monkeypatch.setitem(sys.modules, "detectron2.data.detection_utils", utils)
    _FakeVisualizer.drawn = []
    model = _model(vis_period=1)
    with EventStorage() as storage:
        model(toy_inputs())
        images = storage._vis_data
    assert len(images) == 1
    name, img, _ = images[0]
    assert "GT" in name and "proposals" in name
    assert img.shape == (3, 64, 160)  # the first image twice, side by side, CHW
    assert _FakeVisualizer.drawn == [2, 20]  # 2 gt boxes, then the top 20 proposals


def _mask_rcnn_cfg():
    """A tiny Mask R-CNN: the toy backbone, RPN and StandardROIHeads with box and mask heads."""
    cfg = toy_cfg()
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 4
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 4
    return cfg


def _with_box_masks(inputs):
    for x in inputs:
        inst = x["instances"]
        masks = torch.zeros(len(inst), *inst.image_size, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(inst.gt_boxes.tensor.long().tolist()):
            masks[i, y0:y1, x0:x1] = True
        inst.gt_masks = BitMasks(masks)
    return inputs


def test_generalized_rcnn_from_config():
    cfg = _mask_rcnn_cfg()
    cfg.INPUT.FORMAT = "RGB"
    cfg.VIS_PERIOD = 7
    cfg.MODEL.PIXEL_MEAN = [1.0, 2.0, 3.0]
    cfg.MODEL.PIXEL_STD = [4.0, 5.0, 6.0]
    model = build_model(cfg)
    assert isinstance(model, GeneralizedRCNN)
    assert isinstance(model.proposal_generator, RPN) and isinstance(model.roi_heads, StandardROIHeads)
    assert (model.input_format, model.vis_period) == ("RGB", 7)
    assert model.pixel_mean.flatten().tolist() == [1.0, 2.0, 3.0]
    assert model.pixel_std.flatten().tolist() == [4.0, 5.0, 6.0]
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedProposals"
    assert build_model(cfg).proposal_generator is None


def test_mask_rcnn_end_to_end():
    torch.manual_seed(0)
    model = build_model(_mask_rcnn_cfg())
    with EventStorage():
        losses = model(_with_box_masks(toy_inputs()))
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.stem.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(toy_inputs(with_instances=False))
        det = model.inference(toy_inputs(with_instances=False), do_postprocess=False)
        again = model.inference(toy_inputs(with_instances=False), detected_instances=det)
    inst = out[0]["instances"]
    assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_masks"}
    assert inst.image_size == (128, 160)
    assert inst.pred_masks.shape[1:] == (128, 160)
    assert len(again[0]["instances"]) == len(det[0])


def test_proposal_network_and_build_model():
    cfg = toy_cfg()
    model = build_model(cfg)
    assert isinstance(model, ProposalNetwork) and model.training
    assert model.device == torch.device("cpu")
    assert set(model.state_dict()) >= {"proposal_generator.rpn_head.conv.weight", "backbone.stem.weight"}
    with EventStorage():
        losses = model(toy_inputs())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    model.eval()
    with torch.no_grad():
        out = model(toy_inputs(with_instances=False))
    assert [set(o) for o in out] == [{"proposals"}, {"proposals"}]
    assert out[0]["proposals"].image_size == (128, 160)
    assert 0 < len(out[0]["proposals"]) <= cfg.MODEL.RPN.POST_NMS_TOPK_TEST


def test_proposal_network_accepts_legacy_targets_key():
    model = build_model(toy_cfg())
    inputs = toy_inputs()
    for x in inputs:
        x["targets"] = x.pop("instances")
    with EventStorage():
        losses = model(inputs)
    assert torch.isfinite(losses["loss_rpn_cls"])


def test_build_model_uses_registry_and_device():
    assert {"GeneralizedRCNN", "ProposalNetwork"} <= set(name for name, _ in META_ARCH_REGISTRY)
    cfg = toy_cfg()
    cfg.MODEL.META_ARCHITECTURE = "NoSuchArch"
    with pytest.raises(KeyError, match="NoSuchArch"):
        build_model(cfg)


def test_mask_rcnn_channels_last_matches_contiguous(device):
    """A model moved to channels-last (NHWC; cuDNN's native layout on recent GPUs, users'
    choice) trains and infers like the contiguous one, within the convolutions' rounding
    (in float32: TF32 would round both far more than the layouts differ)."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        _check_channels_last_matches_contiguous(
            device, lambda m: m.to(memory_format=torch.channels_last), nhwc_input=device.type == "cuda"
        )


def test_mask_rcnn_backbone_runs_channels_last_where_cudnn_prefers_it(device, monkeypatch):
    """By default GeneralizedRCNN hands its backbone an NHWC batch where cuDNN computes in
    NHWC (all CUDA GPUs since Volta), with the same results as the NCHW model. On the CPU
    the input keeps its layout; the test then pretends the CPU prefers NHWC, to run the
    same conversion there."""
    if device.type == "cpu":
        model = build_model(_mask_rcnn_cfg())
        assert model.channels_last
        layouts = _backbone_input_layouts(model, toy_inputs())
        assert layouts == [False], "CPU inputs must keep their layout"
        monkeypatch.setattr(rcnn_module, "_use_channels_last", lambda x: True)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        _check_channels_last_matches_contiguous(device, lambda m: m, nhwc_input=True)


def _backbone_input_layouts(model, inputs):
    """For each backbone call of one training step: is its input channels-last?"""
    seen = []
    handle = model.backbone.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)
                                      and not args[0].is_contiguous())
    )
    with EventStorage():
        model(_with_box_masks(inputs))
    handle.remove()
    return seen


def _check_channels_last_matches_contiguous(device, to_nhwc, nhwc_input: bool):
    cfg = _mask_rcnn_cfg()
    cfg.MODEL.DEVICE = str(device)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.channels_last = False  # the reference: NCHW all the way
    nhwc = build_model(cfg)
    nhwc.load_state_dict(model.state_dict())
    nhwc = to_nhwc(nhwc)
    assert _backbone_input_layouts(model, toy_inputs()) == [False]
    assert _backbone_input_layouts(nhwc, toy_inputs()) == [nhwc_input]
    inputs = _with_box_masks(toy_inputs())
    losses = []
    for m in (model, nhwc):
        torch.manual_seed(1)  # the same sampling draws
        with EventStorage():
            losses.append(m(inputs))
    assert losses[0].keys() == losses[1].keys()
    for name in losses[0]:
        torch.testing.assert_close(losses[1][name], losses[0][name], rtol=1e-4, atol=1e-5, msg=name)
    for m in (model, nhwc):
        m.eval()
    with torch.no_grad():
        outs = [m(toy_inputs(with_instances=False))[0]["instances"] for m in (model, nhwc)]
    assert len(outs[0]) == len(outs[1]) > 0
    torch.testing.assert_close(outs[1].pred_boxes.tensor, outs[0].pred_boxes.tensor, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(outs[1].scores, outs[0].scores, rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
def test_build_model_on_cuda_matches_cpu():
    cfg = toy_cfg()
    torch.manual_seed(0)
    # float64: no TF32 convolutions, so both devices make the same top-k and NMS choices.
    cpu_model = build_model(cfg).eval().double()
    cfg.MODEL.DEVICE = "cuda"
    gpu_model = build_model(cfg).eval().double()
    gpu_model.load_state_dict(cpu_model.state_dict())
    assert gpu_model.device.type == "cuda"
    with torch.no_grad():
        a = cpu_model(toy_inputs(with_instances=False))
        b = gpu_model(toy_inputs(with_instances=False))  # CPU images are moved by the model
    for x, y in zip(a, b):
        torch.testing.assert_close(y["proposals"].proposal_boxes.tensor.cpu(), x["proposals"].proposal_boxes.tensor, atol=1e-3, rtol=1e-4)
    gpu_model.train()
    with EventStorage():
        losses = gpu_model(toy_inputs())
    assert all(v.device.type == "cuda" and torch.isfinite(v) for v in losses.values())


@pytest.mark.cuda
def test_generalized_rcnn_on_cuda():
    model = _model().to("cuda")
    with EventStorage():
        losses = model(toy_inputs())
    assert all(v.device.type == "cuda" for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(toy_inputs(with_instances=False))
    assert out[0]["instances"].pred_boxes.device.type == "cuda"


@pytest.mark.cuda
def test_mask_rcnn_end_to_end_on_cuda():
    cfg = _mask_rcnn_cfg()
    cfg.MODEL.DEVICE = "cuda"
    model = build_model(cfg)
    with EventStorage():
        losses = model(_with_box_masks(toy_inputs()))
    assert all(v.device.type == "cuda" and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(toy_inputs(with_instances=False))
    assert out[0]["instances"].pred_masks.device.type == "cuda"


def _training_step_counts(num_copies: int) -> DispatchCounter:
    torch.manual_seed(0)
    model = build_model(_mask_rcnn_cfg())
    inputs = _with_box_masks(toy_inputs()) * num_copies
    with EventStorage():
        model(inputs)  # warm-up: lazily built state (anchors, caches) is not counted
        counter = DispatchCounter()
        with counter:
            sum(model(inputs).values()).backward()
    return counter


def test_training_step_host_syncs_do_not_grow_with_the_batch(monkeypatch):
    monkeypatch.setattr(batched_matching, "BATCH_ON_CPU", True)  # the path a GPU takes
    # Matching, sampling, proposal selection, pooling and the losses work on all images at
    # once: a Mask R-CNN training step waits for the device a fixed number of times,
    # whatever the batch size (the mask targets' box check used to add one per image).
    two, six = _training_step_counts(1), _training_step_counts(3)
    assert six.syncs == two.syncs
    assert two.syncs <= 16
    # The host's work per extra image (dispatched ops, forward and backward): 185 with
    # per-image matching and box areas in the poolers, 72 now; what is left builds each
    # image's Instances and mask targets.
    assert (six.ops - two.ops) / 4 <= 80


def test_mask_loss_reports_non_finite_rois_once_for_all_images():
    from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss
    from detectron2.layers._checks import BadInputError

    images = []
    for n in (2, 3):
        inst = Instances((20, 20))
        inst.proposal_boxes = Boxes(torch.tensor([[1.0, 1.0, 9.0, 9.0]] * n))
        inst.gt_classes = torch.zeros(n, dtype=torch.int64)
        inst.gt_masks = BitMasks(torch.ones(n, 20, 20, dtype=torch.bool))
        images.append(inst)
    images[1].proposal_boxes.tensor[1, 2] = float("nan")
    with EventStorage(), pytest.raises(BadInputError, match=r"boxes must be finite.*rows \[3\]"):
        mask_rcnn_loss(torch.zeros(5, 1, 4, 4), images)
