"""Deterministic transforms: hand-made cases for images, coordinates, segmentations and
inverses."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from detectron2.data import transforms as T


def _img(h=6, w=8, c=3, seed=0):
    rng = np.random.RandomState(seed)
    shape = (h, w, c) if c else (h, w)
    return rng.randint(0, 256, size=shape).astype(np.uint8)


def test_fvcore_family_is_reexported():
    from fvcore.transforms import transform as fv

    for name in ["Transform", "TransformList", "NoOpTransform", "HFlipTransform", "VFlipTransform",
                 "CropTransform", "BlendTransform", "PadTransform"]:
        assert getattr(T, name) is getattr(fv, name)


def test_hflip_twice_is_identity():
    img = _img()
    t = T.HFlipTransform(img.shape[1])
    np.testing.assert_array_equal(t.apply_image(t.apply_image(img)), img)
    np.testing.assert_array_equal(t.apply_image(img), img[:, ::-1])
    pts = np.array([[0.0, 0.0], [2.5, 3.0]])
    np.testing.assert_allclose(t.apply_coords(t.apply_coords(pts.copy())), pts)
    np.testing.assert_allclose(t.apply_coords(pts.copy()), [[8.0, 0.0], [5.5, 3.0]])
    np.testing.assert_allclose(t.inverse().apply_coords(t.apply_coords(pts.copy())), pts)


@pytest.mark.parametrize("c", [0, 1, 3, 4])
def test_resize_uint8_shapes_and_pil(c):
    img = _img(10, 12, c)
    t = T.ResizeTransform(10, 12, 5, 20)
    out = t.apply_image(img)
    assert out.dtype == np.uint8
    assert out.shape == ((5, 20, c) if c else (5, 20))
    # Same pixels as PIL's bilinear resize of the same data.
    src = img[:, :, 0] if c == 1 else img
    ref = np.asarray(Image.fromarray(src).resize((20, 5), Image.BILINEAR))
    np.testing.assert_array_equal(out.reshape(ref.shape), ref)


@pytest.mark.parametrize("interp,mode", [(Image.BILINEAR, "bilinear"), (Image.NEAREST, "nearest"),
                                         (Image.BICUBIC, "bicubic")])
def test_resize_float_matches_interpolate(interp, mode):
    img = np.random.RandomState(1).rand(7, 9, 2).astype(np.float32)
    out = T.ResizeTransform(7, 9, 14, 5, interp).apply_image(img)
    assert out.shape == (14, 5, 2) and out.dtype == np.float32
    align = None if mode == "nearest" else False
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None], (14, 5), mode=mode, align_corners=align)
    np.testing.assert_allclose(out, ref[0].permute(1, 2, 0).numpy(), rtol=1e-6)
    gray = T.ResizeTransform(7, 9, 3, 4, interp).apply_image(img[:, :, 0])
    assert gray.shape == (3, 4)


def test_resize_constant_float_stays_constant():
    img = np.full((5, 5), 3.5, dtype=np.float64)
    np.testing.assert_allclose(T.ResizeTransform(5, 5, 11, 2).apply_image(img), 3.5)


def test_resize_segmentation_is_nearest_and_coords_scale():
    seg = np.zeros((4, 4), dtype=np.uint8)
    seg[:2, :2] = 7
    seg[2:, 2:] = 3
    t = T.ResizeTransform(4, 4, 8, 12)
    out = t.apply_segmentation(seg)
    assert out.shape == (8, 12)
    assert set(np.unique(out)) == {0, 3, 7}  # no blended labels
    assert out[0, 0] == 7 and out[-1, -1] == 3
    pts = np.array([[4.0, 4.0], [1.0, 2.0]])
    np.testing.assert_allclose(t.apply_coords(pts.copy()), [[12.0, 8.0], [3.0, 4.0]])
    np.testing.assert_allclose(t.inverse().apply_coords(t.apply_coords(pts.copy())), pts)
    np.testing.assert_allclose(t.apply_box(np.array([[0, 0, 2, 2.0]])), [[0, 0, 6, 4]])


def test_resize_bad_input():
    t = T.ResizeTransform(4, 4, 8, 8)
    with pytest.raises(ValueError, match="img must have size"):
        t.apply_image(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(AssertionError, match="img must have size"):  # upstream's type
        t.apply_image(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 img"):
        t.apply_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="no torch counterpart"):
        T.ResizeTransform(4, 4, 8, 8, Image.LANCZOS).apply_image(np.zeros((4, 4), np.float32))
    with pytest.raises(KeyError):  # upstream's dict lookup fails with KeyError
        T.ResizeTransform(4, 4, 8, 8, Image.BOX).apply_image(np.zeros((4, 4), np.float32))


def test_resize_non_contiguous_input():
    img = np.random.RandomState(0).rand(6, 10, 3).astype(np.float32)
    view = img[:, ::2]  # non-contiguous
    t = T.ResizeTransform(6, 5, 3, 10)
    np.testing.assert_allclose(t.apply_image(view), t.apply_image(np.ascontiguousarray(view)))


def test_rotation_90_maps_known_points_and_pixels():
    h, w = 4, 6
    t = T.RotationTransform(h, w, 90)  # counter-clockwise, canvas expands to 6x4
    assert (t.bound_h, t.bound_w) == (6, 4)
    pts = np.array([[0.0, 0.0], [6.0, 0.0], [6.0, 4.0], [0.0, 4.0], [1.0, 0.5]])
    # Counter-clockwise on screen: (x, y) -> (y, w - x).
    np.testing.assert_allclose(t.apply_coords(pts), [[0, 6], [0, 0], [4, 0], [4, 6], [0.5, 5]], atol=1e-9)
    img = _img(h, w)
    np.testing.assert_array_equal(t.apply_image(img), np.rot90(img))
    seg = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    np.testing.assert_array_equal(t.apply_segmentation(seg), np.rot90(seg))


def test_rotation_identity_and_inverse():
    img = _img(5, 7)
    t0 = T.RotationTransform(5, 7, 360)
    assert t0.apply_image(img) is img
    pts = np.array([[1.0, 2.0], [3.5, 0.5], [6.0, 4.0]])
    np.testing.assert_allclose(t0.apply_coords(pts), pts)
    # Without expand the inverse is exact; with it, the inverse crops whole pixels out
    # of the re-expanded canvas, so points may move by up to half a pixel.
    for expand, tol in ((False, 1e-6), (True, 0.5 + 1e-6)):
        t = T.RotationTransform(5, 7, 33.0, expand=expand)
        back = t.inverse().apply_coords(t.apply_coords(pts))
        np.testing.assert_allclose(back, pts, atol=tol)
    t = T.RotationTransform(6, 8, 90.0)  # even sizes: the crop is exact
    np.testing.assert_allclose(t.inverse().apply_coords(t.apply_coords(pts)), pts, atol=1e-6)
    t = T.RotationTransform(5, 7, 30.0, expand=False, center=(1, 1))
    np.testing.assert_allclose(t.apply_coords(np.array([[1.0, 1.0]])), [[1.0, 1.0]], atol=1e-9)
    assert t.apply_image(img).shape == img.shape


def test_rotation_180_inverse_image():
    img = _img(4, 6)
    t = T.RotationTransform(4, 6, 180)
    np.testing.assert_array_equal(t.apply_image(img), img[::-1, ::-1])
    np.testing.assert_array_equal(t.inverse().apply_image(t.apply_image(img)), img)


def test_extent_transform():
    img = _img(6, 8)
    same = T.ExtentTransform((0, 0, 8, 6), (6, 8), interp=Image.NEAREST)
    np.testing.assert_array_equal(same.apply_image(img), img)
    # The left half, doubled in width; pixels right of the image are filled.
    t = T.ExtentTransform((4, 0, 12, 6), (6, 8), interp=Image.NEAREST, fill=0)
    out = t.apply_image(img)
    np.testing.assert_array_equal(out[:, :4], img[:, 4:])
    assert (out[:, 4:] == 0).all()
    np.testing.assert_allclose(t.apply_coords(np.array([[4.0, 3.0], [12.0, 6.0]])), [[0, 3], [8, 6]])
    half = T.ExtentTransform((0, 0, 8, 6), (3, 4))
    np.testing.assert_allclose(half.apply_coords(np.array([[8.0, 6.0]])), [[4, 3]])
    seg = np.zeros((6, 8), np.uint8)
    seg[:, 4:] = 5
    assert set(np.unique(half.apply_segmentation(seg))) <= {0, 5}


def test_color_transforms():
    img = _img()
    t = T.ColorTransform(lambda x: 255 - x)
    np.testing.assert_array_equal(t.apply_image(img), 255 - img)
    pts = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(t.apply_coords(pts), pts)
    assert isinstance(t.inverse(), T.NoOpTransform)
    seg = np.ones((6, 8), np.uint8)
    np.testing.assert_array_equal(t.apply_segmentation(seg), seg)

    from PIL import ImageOps

    p = T.PILColorTransform(ImageOps.invert)
    np.testing.assert_array_equal(p.apply_image(img), 255 - img)
    with pytest.raises(ValueError, match="op must be callable"):
        T.ColorTransform(3)


def test_rotated_box_hflip_and_resize():
    boxes = np.array([[10.0, 20.0, 8.0, 4.0, 30.0]])
    flipped = T.HFlipTransform(100).apply_rotated_box(boxes)
    np.testing.assert_allclose(flipped, [[90.0, 20.0, 8.0, 4.0, -30.0]])

    # Uniform scale: sides scale, angle is kept.
    out = T.ResizeTransform(50, 100, 100, 200).apply_rotated_box(boxes)
    np.testing.assert_allclose(out, [[20.0, 40.0, 16.0, 8.0, 30.0]])
    # Width along the x axis stretches by sx; a box standing at 90 degrees by sy.
    t = T.ResizeTransform(50, 100, 50, 300)  # sx = 3, sy = 1
    np.testing.assert_allclose(t.apply_rotated_box(np.array([[10, 10, 8, 4, 0.0]])), [[30, 10, 24, 4, 0]])
    np.testing.assert_allclose(
        t.apply_rotated_box(np.array([[10, 10, 8, 4, 90.0]])), [[30, 10, 8, 12, 90]], atol=1e-9
    )
    # 45 degrees under sx = 3: the width direction (1, -1) becomes (3, -1), the height
    # direction (1, 1) becomes (3, 1) and sets the angle (as RotatedBoxes.scale).
    r = t.apply_rotated_box(np.array([[0, 0, np.sqrt(2), np.sqrt(2), 45.0]]))[0]
    np.testing.assert_allclose(r[2], np.sqrt(10))
    np.testing.assert_allclose(r[4], np.rad2deg(np.arctan2(3, 1)))
    np.testing.assert_allclose(T.NoOpTransform().apply_rotated_box(boxes), boxes)


def test_crop_and_pad_boxes():
    t = T.TransformList([T.CropTransform(2, 3, 10, 10), T.PadTransform(0, 0, 5, 5)])
    img = _img(20, 20)
    assert t.apply_image(img).shape == (15, 15, 3)
    np.testing.assert_allclose(t.apply_box(np.array([[5, 5, 8, 9.0]])), [[3, 2, 6, 6]])


_PIL_FILTERS = [Image.NEAREST, Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX, Image.HAMMING]


def _pil_reference(img: np.ndarray, new_h: int, new_w: int, interp) -> np.ndarray:
    """Upstream's uint8 path, written out: PIL's resize of the same array (a trailing
    1-channel axis goes through mode L and comes back)."""
    one = img.ndim == 3 and img.shape[2] == 1
    out = np.asarray(Image.fromarray(img[:, :, 0] if one else img).resize((new_w, new_h), interp))
    return out[:, :, None] if one else out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("channels", [0, 1, 2, 3, 4])
def test_resize_uint8_bit_identical_to_pil(seed, channels, monkeypatch):
    # Random sizes up and down (and mixed), every PIL filter, with and without OpenCV.
    import sys

    rng = np.random.RandomState(100 * seed + channels)
    h, w = rng.randint(1, 60, size=2)
    new_h, new_w = rng.randint(1, 130, size=2)
    shape = (h, w, channels) if channels else (h, w)
    img = rng.randint(0, 256, size=shape).astype(np.uint8)
    t = T.ResizeTransform(h, w, new_h, new_w)
    for interp in _PIL_FILTERS:
        ref = _pil_reference(img, new_h, new_w, interp)
        with monkeypatch.context() as m:
            m.setitem(sys.modules, "cv2", None)  # "OpenCV is not installed"
            without_cv2 = t.apply_image(img, interp=interp)
        np.testing.assert_array_equal(t.apply_image(img, interp=interp), ref)
        np.testing.assert_array_equal(without_cv2, ref)
        np.testing.assert_array_equal(T.ResizeTransform(h, w, new_h, new_w, interp).apply_image(img), ref)
    np.testing.assert_array_equal(t.apply_segmentation(img), _pil_reference(img, new_h, new_w, Image.NEAREST))


def test_resize_uint8_upsample_matches_pil_where_opencv_differs():
    # The case that used to go through OpenCV: bilinear 2.5x upsampling of a random image.
    img = np.random.RandomState(3).randint(0, 256, (40, 30, 3)).astype(np.uint8)
    out = T.ResizeTransform(40, 30, 100, 75).apply_image(img)
    np.testing.assert_array_equal(out, _pil_reference(img, 100, 75, Image.BILINEAR))
    # A reversed-channel view (BGR from RGB) gives the same as its contiguous copy.
    view = img[:, :, ::-1]
    t = T.ResizeTransform(40, 30, 100, 75)
    np.testing.assert_array_equal(t.apply_image(view), t.apply_image(np.ascontiguousarray(view)))


@pytest.mark.parametrize("interp,mode", [(Image.BILINEAR, "bilinear"), (Image.NEAREST, "nearest"),
                                         (Image.BICUBIC, "bicubic")])
@pytest.mark.parametrize("channels", [0, 1, 3, 4])
def test_resize_float_random_sizes_match_interpolate(interp, mode, channels):
    rng = np.random.RandomState(channels)
    for _ in range(3):
        h, w, new_h, new_w = rng.randint(1, 40, size=4)
        shape = (h, w, channels) if channels else (h, w)
        img = rng.rand(*shape) * 255
        out = T.ResizeTransform(h, w, new_h, new_w, interp).apply_image(img)
        nchw = torch.from_numpy(img.reshape(h, w, -1)).permute(2, 0, 1)[None]
        ref = F.interpolate(nchw, (new_h, new_w), mode=mode, align_corners=None if mode == "nearest" else False)
        ref = ref[0].permute(1, 2, 0).reshape((new_h, new_w) + img.shape[2:]).numpy()
        assert out.dtype == img.dtype
        np.testing.assert_array_equal(out, ref)
