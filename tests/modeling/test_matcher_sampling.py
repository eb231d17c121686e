import pytest
import torch

from detectron2.modeling import Matcher, subsample_labels

IOU = torch.tensor(
    [
        [0.1, 0.6, 0.4, 0.0],
        [0.2, 0.3, 0.45, 0.8],
    ]
)


def test_matcher_thresholds_and_labels():
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1])(IOU)
    assert matches.dtype == torch.int64 and labels.dtype == torch.int8
    assert matches.tolist() == [1, 0, 1, 1]
    assert labels.tolist() == [0, -1, -1, 1]


def test_matcher_boundaries_belong_to_the_upper_interval():
    iou = torch.tensor([[0.3, 0.7, 0.2999, 0.6999]])
    _, labels = Matcher([0.3, 0.7], [0, -1, 1])(iou)
    assert labels.tolist() == [-1, 1, 0, -1]


def test_matcher_low_quality_matches():
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(IOU)
    # pred 1 is gt 0's best match (0.6): promoted to positive; pred 3 already was.
    assert labels.tolist() == [0, 1, -1, 1]
    assert matches.tolist() == [1, 0, 1, 1]
    # Ties: every prediction sharing a ground truth's best quality becomes positive.
    iou = torch.tensor([[0.5, 0.5, 0.1], [0.0, 0.0, 0.0]])
    _, labels = Matcher([0.7], [0, 1], allow_low_quality_matches=True)(iou)
    # gt 1 has quality 0 with all: its "best" ties everywhere, as upstream.
    assert labels.tolist() == [1, 1, 1]
    _, labels = Matcher([0.7], [0, 1], allow_low_quality_matches=True)(iou[:1])
    assert labels.tolist() == [1, 1, 0]


def test_matcher_empty():
    matches, labels = Matcher([0.5], [0, 1])(torch.zeros(0, 5))
    assert matches.tolist() == [0] * 5 and labels.tolist() == [0] * 5
    matches, labels = Matcher([0.3, 0.7], [-1, 0, 1])(torch.zeros(0, 3))
    assert labels.tolist() == [-1] * 3
    matches, labels = Matcher([0.5], [0, 1])(torch.zeros(3, 0))
    assert matches.numel() == 0 and labels.numel() == 0


def test_matcher_bad_arguments():
    with pytest.raises(ValueError, match="thresholds"):
        Matcher([0.0, 0.5], [0, -1, 1])
    with pytest.raises(ValueError, match="non-decreasing"):
        Matcher([0.7, 0.3], [0, -1, 1])
    with pytest.raises(ValueError, match="labels"):
        Matcher([0.5], [0, 2])
    with pytest.raises(ValueError, match="labels"):
        Matcher([0.5], [0, -1, 1])
    with pytest.raises(ValueError, match="match_quality_matrix"):
        Matcher([0.5], [0, 1])(torch.zeros(4))


def test_matcher_on_device(device):
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], True)(IOU.to(device))
    assert matches.device.type == device.type
    assert labels.cpu().tolist() == [0, 1, -1, 1]


def _labels(pos, neg, ignore, bg=0, fg=1):
    labels = torch.cat([torch.full((pos,), fg), torch.full((neg,), bg), torch.full((ignore,), -1)])
    return labels[torch.randperm(len(labels))]


def test_subsample_counts():
    torch.manual_seed(0)
    labels = _labels(10, 20, 5)
    pos, neg = subsample_labels(labels, 16, 0.25, 0)
    assert len(pos) == 4 and len(neg) == 12
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 4 and len(set(neg.tolist())) == 12


def test_subsample_short_of_positives_fills_with_negatives():
    torch.manual_seed(0)
    labels = _labels(2, 30, 3)
    pos, neg = subsample_labels(labels, 16, 0.5, 0)
    assert len(pos) == 2 and len(neg) == 14
    pos, neg = subsample_labels(_labels(2, 5, 3), 16, 0.5, 0)
    assert len(pos) == 2 and len(neg) == 5  # not enough of either


def test_subsample_with_class_labels_and_bg_label():
    torch.manual_seed(0)
    # ROI heads: classes 0..79 are foreground, 80 is background.
    labels = torch.tensor([3, 80, 80, 0, -1, 79, 80, 5])
    pos, neg = subsample_labels(labels, 100, 0.25, 80)
    assert sorted(pos.tolist()) == [0, 3, 5, 7]
    assert sorted(neg.tolist()) == [1, 2, 6]
    pos, neg = subsample_labels(labels, 4, 0.5, 80)
    assert len(pos) == 2 and len(neg) == 2
    assert set(pos.tolist()) <= {0, 3, 5, 7} and set(neg.tolist()) <= {1, 2, 6}


def test_subsample_bad_arguments_and_device(device):
    with pytest.raises(ValueError, match="labels"):
        subsample_labels(torch.zeros(2, 3), 4, 0.5, 0)
    with pytest.raises(ValueError, match="positive_fraction"):
        subsample_labels(torch.zeros(3), 4, 1.5, 0)
    pos, neg = subsample_labels(_labels(3, 3, 0).to(device), 4, 0.5, 0)
    assert pos.device.type == device.type and len(pos) == 2 and len(neg) == 2
