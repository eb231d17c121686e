import pytest
import torch

from detectron2.modeling import detector_postprocess, sem_seg_postprocess
from detectron2.structures import Boxes, Instances, ROIMasks


def _instances():
    inst = Instances((100, 200))
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 40.0], [190.0, 90.0, 210.0, 110.0], [150.0, 120.0, 160.0, 130.0]]))
    inst.scores = torch.tensor([0.9, 0.8, 0.7])
    inst.pred_keypoints = torch.tensor([[[20.0, 30.0, 1.0]], [[195.0, 95.0, 0.5]], [[155.0, 125.0, 0.2]]])
    return inst


def test_boxes_scaled_clipped_and_empty_dropped():
    out = detector_postprocess(_instances(), 200, 400)
    assert out.image_size == (200, 400)
    # x2 scale; the second box is clipped to the image, the third falls outside (empty).
    torch.testing.assert_close(
        out.pred_boxes.tensor, torch.tensor([[20.0, 20.0, 100.0, 80.0], [380.0, 180.0, 400.0, 200.0]])
    )
    torch.testing.assert_close(out.scores, torch.tensor([0.9, 0.8]))
    torch.testing.assert_close(out.pred_keypoints, torch.tensor([[[40.0, 60.0, 1.0]], [[390.0, 190.0, 0.5]]]))


def test_anisotropic_scale_and_proposals():
    inst = Instances((100, 200))
    inst.proposal_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 40.0]]))
    out = detector_postprocess(inst, 50, 600)
    torch.testing.assert_close(out.proposal_boxes.tensor, torch.tensor([[30.0, 5.0, 150.0, 20.0]]))
    with pytest.raises(ValueError, match="pred_boxes"):
        detector_postprocess(Instances((10, 10), scores=torch.zeros(2)), 20, 20)


@pytest.mark.parametrize("as_roi_masks", [False, True])
def test_masks_pasted_into_image(as_roi_masks):
    inst = Instances((50, 50))
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 20.0, 30.0]]))
    probs = torch.ones(1, 1, 14, 14)
    inst.pred_masks = ROIMasks(probs[:, 0]) if as_roi_masks else probs
    out = detector_postprocess(inst, 100, 100)
    masks = out.pred_masks
    assert masks.shape == (1, 100, 100) and masks.dtype == torch.bool
    ys, xs = torch.nonzero(masks[0], as_tuple=True)
    assert (xs.min().item(), xs.max().item()) == (20, 39)
    assert (ys.min().item(), ys.max().item()) == (20, 59)


def test_sem_seg_postprocess():
    logits = torch.zeros(3, 32, 48)
    logits[1, :16, :24] = 1.0  # the valid (unpadded) region is 16 x 24
    out = sem_seg_postprocess(logits, (16, 24), 64, 96)
    assert out.shape == (3, 64, 96)
    torch.testing.assert_close(out[1], torch.ones(64, 96))  # padding was cropped away
    with pytest.raises(ValueError, match="result"):
        sem_seg_postprocess(torch.zeros(1, 3, 4, 4), (4, 4), 8, 8)
