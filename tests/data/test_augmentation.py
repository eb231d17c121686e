"""Augmentations: input plumbing, each augmentation's output, and determinism under a seed."""
import sys

import numpy as np
import pytest

from detectron2.data import transforms as T
from detectron2.structures import Boxes, pairwise_iou


def _img(h=60, w=80, c=3, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, c)).astype(np.uint8)


def test_auginput_checks_image():
    with pytest.raises(ValueError, match="numpy array"):
        T.AugInput([[1, 2]])
    with pytest.raises(ValueError, match="uint8 or floating"):
        T.AugInput(np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="HxW"):
        T.AugInput(np.zeros((4,), np.uint8))


def test_get_transform_receives_named_inputs():
    seen = {}

    class NeedsAll(T.Augmentation):
        def get_transform(self, image, boxes, sem_seg):
            seen.update(image=image, boxes=boxes, sem_seg=sem_seg)
            return T.NoOpTransform()

    class NeedsMissing(T.Augmentation):
        def get_transform(self, image, polygons):
            return T.NoOpTransform()

    class Declared(T.Augmentation):
        input_args = ("sem_seg",)

        def get_transform(self, *args):
            seen["declared"] = args
            return T.NoOpTransform()

    img, boxes, seg = _img(), np.array([[1, 2, 3, 4.0]]), np.zeros((60, 80), np.uint8)
    inp = T.AugInput(img, boxes=boxes, sem_seg=seg)
    NeedsAll()(inp)
    assert seen["image"] is img and seen["boxes"] is boxes and seen["sem_seg"] is seg
    Declared()(inp)
    assert seen["declared"] == (seg,)
    with pytest.raises(AttributeError, match="polygons"):
        NeedsMissing()(inp)
    with pytest.raises(TypeError, match="must override"):
        T.Augmentation()(inp)


def test_augmentation_list_and_apply_augmentations():
    img = _img()
    augs = [T.HFlipTransform(80), T.Resize((30, 40)), T.RandomFlip(prob=1.0)]
    out, tfms = T.apply_augmentations(augs, img)
    assert isinstance(out, np.ndarray) and out.shape == (30, 40, 3)
    assert isinstance(tfms, T.TransformList)
    # Two horizontal flips cancel: a plain resize of the original.
    np.testing.assert_array_equal(out, T.ResizeTransform(60, 80, 30, 40).apply_image(img))
    inp = T.AugInput(img, boxes=np.array([[0, 0, 8, 6.0]]))
    ret, tfms = T.apply_augmentations(augs, inp)
    assert ret is inp
    np.testing.assert_allclose(inp.boxes, [[0, 0, 4, 3]])
    assert T.apply_transform_gens is T.apply_augmentations
    assert T.StandardAugInput is T.AugInput and T.TransformGen is T.Augmentation
    assert "RandomFlip" in repr(T.AugmentationList(augs))


def test_random_apply():
    img = _img()
    with pytest.raises(ValueError, match="prob"):
        T.RandomApply(T.RandomFlip(), prob=1.5)
    never = T.RandomApply(T.HFlipTransform(80), prob=0.0)
    always = T.RandomApply(T.HFlipTransform(80), prob=1.0)
    assert isinstance(never.get_transform(img), T.NoOpTransform)
    assert isinstance(always.get_transform(img), T.HFlipTransform)
    inp = T.AugInput(img)
    assert isinstance(always(inp), T.HFlipTransform)
    np.testing.assert_array_equal(inp.image, img[:, ::-1])


def test_random_flip():
    img = _img()
    assert isinstance(T.RandomFlip(1.0).get_transform(img), T.HFlipTransform)
    v = T.RandomFlip(1.0, horizontal=False, vertical=True).get_transform(img)
    assert isinstance(v, T.VFlipTransform) and v.height == 60
    assert isinstance(T.RandomFlip(0.0).get_transform(img), T.NoOpTransform)
    with pytest.raises(ValueError):
        T.RandomFlip(horizontal=True, vertical=True)
    with pytest.raises(ValueError):
        T.RandomFlip(horizontal=False, vertical=False)


def test_resize_and_random_resize():
    img = _img()
    assert T.Resize(32).get_transform(img).apply_image(img).shape == (32, 32, 3)
    t = T.Resize((20, 50)).get_transform(img)
    assert (t.new_h, t.new_w) == (20, 50)
    shapes = [(10, 20), (30, 40)]
    for _ in range(10):
        t = T.RandomResize(shapes).get_transform(img)
        assert (t.new_h, t.new_w) in shapes


@pytest.mark.parametrize(
    "old,short,max_size,expected",
    [
        ((480, 640), 800, 1333, (800, 1067)),  # 1066.67 rounds up
        ((640, 480), 800, 1333, (1067, 800)),
        ((1000, 3000), 800, 1333, (444, 1333)),  # long side capped
        ((600, 600), 800, 1333, (800, 800)),
        ((427, 640), 800, sys.maxsize, (800, 1199)),  # 1199.06
        ((3, 5), 2, 1000, (2, 3)),  # 3.33 rounds down
        ((2, 5), 3, 1000, (3, 8)),  # 7.5 rounds half up
    ],
)
def test_resize_shortest_edge_output_shape(old, short, max_size, expected):
    assert T.ResizeShortestEdge.get_output_shape(old[0], old[1], short, max_size) == expected


def test_resize_shortest_edge_sampling():
    img = _img(60, 80)
    rng = T.ResizeShortestEdge((20, 30), max_size=1000, sample_style="range")
    sizes = {rng.get_transform(img).new_h for _ in range(200)}
    assert sizes <= set(range(20, 31)) and len(sizes) > 5
    choice = T.ResizeShortestEdge((16, 32), sample_style="choice")
    sizes = {choice.get_transform(img).new_h for _ in range(50)}
    assert sizes == {16, 32}
    assert isinstance(T.ResizeShortestEdge(0).get_transform(img), T.NoOpTransform)
    with pytest.raises(ValueError, match="sample_style"):
        T.ResizeShortestEdge(10, sample_style="uniform")
    with pytest.raises(ValueError, match="min, max"):
        T.ResizeShortestEdge((10, 20, 30), sample_style="range")
    assert repr(T.ResizeShortestEdge((640, 800), 1333)) == "ResizeShortestEdge(short_edge_length=(640, 800), max_size=1333)"


def test_resize_scale_fits_target():
    img = _img(60, 80)
    aug = T.ResizeScale(0.5, 2.0, 100, 100)
    for _ in range(20):
        t = aug.get_transform(img)
        assert t.new_w / t.new_h == pytest.approx(80 / 60, rel=0.05)
        assert t.new_w <= 200 and t.new_h <= 200
    t = aug._get_resize(img, 1.0)
    assert (t.new_h, t.new_w) == (75, 100)


def test_random_rotation():
    img = _img(40, 60)
    t = T.RandomRotation([90], sample_style="choice").get_transform(img)
    assert isinstance(t, T.RotationTransform) and t.angle == 90
    assert t.apply_image(img).shape == (60, 40, 3)
    for _ in range(10):
        t = T.RandomRotation([-10, 10]).get_transform(img)
        assert -10 <= t.angle <= 10
    assert isinstance(T.RandomRotation([0, 360], sample_style="choice").get_transform(img), (T.NoOpTransform, T.RotationTransform))
    t = T.RandomRotation([30], expand=False, center=[(0.0, 0.0)], sample_style="choice").get_transform(img)
    np.testing.assert_allclose(t.center, (0.0, 0.0))
    t = T.RandomRotation([10, 20], expand=False, center=[[0.25, 0.5], [0.25, 0.5]]).get_transform(img)
    np.testing.assert_allclose(t.center, (15.0, 20.0))
    assert isinstance(T.RandomRotation(0).get_transform(img), T.NoOpTransform)


@pytest.mark.parametrize("shape", [(60, 80), (20, 30), (60, 30)])
def test_fixed_size_crop_output_size(shape):
    img = _img(*shape)
    seg = np.zeros(shape, np.uint8)
    inp = T.AugInput(img, boxes=np.array([[0, 0, 10, 10.0]]), sem_seg=seg)
    tfm = T.FixedSizeCrop((40, 50))(inp)
    assert inp.image.shape == (40, 50, 3) and inp.sem_seg.shape == (40, 50)
    h, w = shape
    if h < 40:  # padded rows carry the pad values
        assert (inp.image[h:] == 128).all() and (inp.sem_seg[h:] == 255).all()
    no_pad = T.FixedSizeCrop((40, 50), pad=False).get_transform(img)
    assert no_pad.apply_image(img).shape == (min(h, 40), min(w, 50), 3)
    assert isinstance(tfm, T.TransformList)


@pytest.mark.parametrize(
    "crop_type,crop_size,check",
    [
        ("relative", (0.5, 0.25), lambda h, w: (h, w) == (30, 20)),
        ("relative_range", (0.5, 0.5), lambda h, w: 30 <= h <= 60 and 40 <= w <= 80),
        ("absolute", (20, 100), lambda h, w: (h, w) == (20, 80)),
        ("absolute_range", (10, 30), lambda h, w: 10 <= h <= 30 and 10 <= w <= 30),
    ],
)
def test_random_crop_types(crop_type, crop_size, check):
    img = _img(60, 80)
    aug = T.RandomCrop(crop_type, crop_size)
    for _ in range(20):
        t = aug.get_transform(img)
        assert isinstance(t, T.CropTransform)
        assert check(t.h, t.w)
        assert 0 <= t.x0 <= 80 - t.w and 0 <= t.y0 <= 60 - t.h
        assert t.apply_image(img).shape == (t.h, t.w, 3)


def test_random_crop_moves_boxes():
    img = _img(60, 80)
    t = T.CropTransform(10, 20, 30, 30)
    np.testing.assert_allclose(t.apply_box(np.array([[15, 25, 20, 40.0]])), [[5, 5, 10, 20]])
    with pytest.raises(ValueError, match="crop_type"):
        T.RandomCrop("random", (1, 1))
    with pytest.raises(ValueError, match="absolute_range"):
        T.RandomCrop("absolute_range", (30, 10)).get_transform(img)


def test_random_crop_category_area_constraint():
    np.random.seed(0)
    img = _img(40, 40)
    seg = np.zeros((40, 40), np.uint8)
    seg[:, 30:] = 1  # category 0 dominates most windows
    seg[35:, :] = 255
    aug = T.RandomCrop_CategoryAreaConstraint("absolute", (20, 20), single_category_max_area=0.8, ignored_category=255)
    for _ in range(10):
        t = aug.get_transform(img, seg)
        labels, counts = np.unique(t.apply_segmentation(seg), return_counts=True)
        counts = counts[labels != 255]
        assert len(counts) > 1 and counts.max() < 0.8 * counts.sum()
    plain = T.RandomCrop_CategoryAreaConstraint("absolute", (20, 20))
    assert plain(T.AugInput(img, sem_seg=seg)).apply_image(img).shape == (20, 20, 3)


def test_random_extent():
    img = _img(40, 60)
    same = T.RandomExtent((1.0, 1.0), (0.0, 0.0)).get_transform(img)
    np.testing.assert_allclose(same.src_rect, (0, 0, 60, 40))
    assert same.apply_image(img).shape == (40, 60, 3)
    t = T.RandomExtent((2.0, 2.0), (0.0, 0.0)).get_transform(img)
    out = t.apply_image(img)
    assert out.shape == (80, 120, 3)
    assert (out[:10] == 0).all()  # outside the source image
    np.testing.assert_allclose(t.apply_coords(np.array([[0.0, 0.0]])), [[30, 20]])


def test_color_augmentations():
    img = np.random.RandomState(0).rand(10, 12, 3) * 100
    np.testing.assert_allclose(T.RandomBrightness(2.0, 2.0).get_transform(img).apply_image(img), img * 2)
    np.testing.assert_allclose(T.RandomContrast(1.0, 1.0).get_transform(img).apply_image(img), img)
    zero = T.RandomContrast(0.0, 0.0).get_transform(img).apply_image(img)
    np.testing.assert_allclose(zero, np.full_like(img, img.mean()))
    gray = np.repeat(img[:, :, :1], 3, axis=2)
    np.testing.assert_allclose(T.RandomSaturation(0.2, 3.0).get_transform(gray).apply_image(gray), gray)
    desat = T.RandomSaturation(0.0, 0.0).get_transform(img).apply_image(img)
    np.testing.assert_allclose(desat[..., 0], desat[..., 2])
    np.testing.assert_allclose(T.RandomLighting(0.0).get_transform(img).apply_image(img), img)
    lit = T.RandomLighting(10.0).get_transform(img).apply_image(img)
    shift = lit - img
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0, 0], shift.shape))
    with pytest.raises(ValueError, match="RGB"):
        T.RandomSaturation(0.5, 1.5).get_transform(img[:, :, :1])
    with pytest.raises(ValueError, match="RGB"):
        T.RandomLighting(0.1).get_transform(img[:, :, 0])


def test_color_augmentation_keeps_uint8():
    img = _img()
    out = T.RandomBrightness(0.5, 1.5).get_transform(img).apply_image(img)
    assert out.dtype == np.uint8 and out.shape == img.shape


def test_min_iou_random_crop():
    np.random.seed(3)
    img = _img(100, 100)
    boxes = np.array([[10, 10, 40, 40], [50, 60, 90, 95.0]])
    aug = T.MinIoURandomCrop()
    assert isinstance(aug.get_transform(img, None), T.NoOpTransform)
    crops = 0
    for _ in range(30):
        t = aug.get_transform(img, boxes)
        if isinstance(t, T.NoOpTransform):
            assert aug.mode == 1  # "keep the whole image" was drawn
            continue
        crops += 1
        patch = np.array([[t.x0, t.y0, t.x0 + t.w, t.y0 + t.h]], dtype=np.float64)
        ious = pairwise_iou(Boxes(patch), Boxes(boxes))
        assert float(ious.min()) >= aug.mode - 1e-6
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (centers[:, 0] > patch[0, 0]) & (centers[:, 0] < patch[0, 2]) & (centers[:, 1] > patch[0, 1]) & (
            centers[:, 1] < patch[0, 3]
        )
        assert inside.any()
        assert 0.5 <= t.h / t.w <= 2.0 + 0.1
    assert crops > 0


def _pipeline():
    return [
        T.RandomCrop("relative_range", (0.5, 0.5)),
        T.ResizeShortestEdge((32, 64), 100),
        T.RandomFlip(),
        T.RandomRotation([-15, 15]),
        T.RandomBrightness(0.8, 1.2),
    ]


def test_determinism_under_seed():
    img = _img()
    results = []
    for _ in range(2):
        np.random.seed(1234)
        out, tfms = T.apply_augmentations(_pipeline(), img)
        results.append((out, str(tfms)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    np.random.seed(4321)
    assert str(T.apply_augmentations(_pipeline(), img)[1]) != results[0][1]


def test_transforms_of_augmentations_invert_boxes():
    np.random.seed(0)
    img = _img()
    boxes = np.array([[10, 12, 30, 40.0]])
    inp = T.AugInput(img, boxes=boxes)
    tfms = inp.apply_augmentations([T.ResizeShortestEdge(120, 1000), T.RandomFlip(1.0)])
    np.testing.assert_allclose(tfms.inverse().apply_box(inp.boxes), boxes, atol=1e-6)
