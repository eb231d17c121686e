"""Augmentation: a policy that looks at its inputs and returns a deterministic Transform;
AugInput carries the data the transforms are applied to."""
import inspect
import pprint
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from fvcore.transforms.transform import Transform, TransformList

from detectron2.layers._errors import TypeAssertionError, ValueAssertionError

# Canonical names before their aliases: fixup_module_metadata names objects by the first.
__all__ = [
    "Augmentation",
    "AugmentationList",
    "AugInput",
    "apply_augmentations",
    "TransformGen",
    "apply_transform_gens",
    "StandardAugInput",
]


def _check_img_dtype(img: Any) -> None:
    if not isinstance(img, np.ndarray):
        raise ValueAssertionError(f"image must be a numpy array, got {type(img)}")
    if np.issubdtype(img.dtype, np.integer) and img.dtype != np.uint8:
        raise ValueAssertionError(f"image must be uint8 or floating point, got dtype {img.dtype}")
    if img.ndim not in (2, 3):
        raise ValueAssertionError(f"image must be HxW or HxWxC, got shape {img.shape}")


def _get_aug_input_args(aug: "Augmentation", aug_input: Any) -> List[Any]:
    """The attributes of `aug_input` that `aug.get_transform` takes, in order: named by
    `aug.input_args`, or else by the parameter names of get_transform."""
    names = aug.input_args
    if names is None:
        params = list(inspect.signature(aug.get_transform).parameters.values())
        if len(params) == 1:
            # One argument is always the image, whatever the parameter is called.
            names = ("image",)
        else:
            names = []
            for p in params:
                if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                    raise TypeError(
                        f"{type(aug)}.get_transform takes *args/**kwargs: set input_args on the "
                        "augmentation to say which inputs it needs"
                    )
                names.append(p.name)
        aug.input_args = tuple(names)  # inspect once per augmentation, not per call
    args = []
    for name in names:
        if not hasattr(aug_input, name):
            raise AttributeError(
                f"{type(aug)}.get_transform needs input '{name}', which {type(aug_input)} does not have"
            )
        args.append(getattr(aug_input, name))
    return args


class Augmentation:
    """Base class of augmentations.

    Subclasses implement ``get_transform(self, *args)``, whose parameter names (or the
    ``input_args`` attribute) name the attributes of the AugInput it needs (e.g.
    ``image``, ``boxes``, ``sem_seg``), and which returns a Transform. Randomness lives
    only in get_transform: the returned Transform is deterministic, so it can be
    applied to several pieces of data, or inverted.
    """

    input_args: Optional[Tuple[str, ...]] = None

    def _init(self, params: Optional[dict] = None) -> None:
        """Store the constructor arguments as attributes (call with ``locals()``)."""
        if params:
            for k, v in params.items():
                if k != "self" and not k.startswith("_"):
                    setattr(self, k, v)

    def get_transform(self, *args) -> Transform:
        """The Transform for these inputs. Subclasses must override it (or __call__)."""
        raise TypeError(f"{type(self).__name__} must override get_transform() or __call__()")

    def __call__(self, aug_input) -> Transform:
        """Compute the transform from `aug_input`, apply it there in place, return it."""
        args = _get_aug_input_args(self, aug_input)
        tfm = self.get_transform(*args)
        if not isinstance(tfm, (Transform, TransformList)):
            raise TypeAssertionError(
                f"{type(self)}.get_transform must return a Transform or TransformList, got {type(tfm)}"
            )
        aug_input.transform(tfm)
        return tfm

    def _rand_range(self, low: float = 1.0, high: Optional[float] = None, size=None):
        """Uniform random numbers in [low, high), or [0, low) when high is None."""
        if high is None:
            low, high = 0, low
        if size is None:
            size = []
        return np.random.uniform(low, high, size)

    def __repr__(self) -> str:
        # Show the constructor arguments whose values are not the defaults.
        try:
            sig = inspect.signature(self.__init__)
            parts = []
            for name, param in sig.parameters.items():
                if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                    return super().__repr__()
                if not hasattr(self, name):
                    return super().__repr__()
                value = getattr(self, name)
                if param.default is value:
                    continue
                text = pprint.pformat(value)
                parts.append(f"{name}={'...' if chr(10) in text else text}")
            return f"{type(self).__name__}({', '.join(parts)})"
        except (TypeError, ValueError):
            return super().__repr__()

    __str__ = __repr__


class _TransformToAug(Augmentation):
    """An Augmentation that always returns one fixed Transform."""

    def __init__(self, tfm: Transform):
        self.tfm = tfm

    def get_transform(self, *args) -> Transform:
        return self.tfm

    def __repr__(self) -> str:
        return repr(self.tfm)

    __str__ = __repr__


def _transform_to_aug(tfm_or_aug: Union[Transform, Augmentation]) -> Augmentation:
    if isinstance(tfm_or_aug, Augmentation):
        return tfm_or_aug
    if not isinstance(tfm_or_aug, (Transform, TransformList)):
        raise TypeAssertionError(f"expected a Transform or an Augmentation, got {type(tfm_or_aug)}")
    return _TransformToAug(tfm_or_aug)


class AugmentationList(Augmentation):
    """Applies a sequence of augmentations (or fixed transforms) in order; each one sees
    the inputs as transformed by those before it."""

    def __init__(self, augs: Sequence[Union[Transform, Augmentation]]):
        super().__init__()
        self.augs = [_transform_to_aug(x) for x in augs]

    def __call__(self, aug_input) -> TransformList:
        return TransformList([aug(aug_input) for aug in self.augs])

    def __repr__(self) -> str:
        return f"AugmentationList[{', '.join(str(x) for x in self.augs)}]"

    __str__ = __repr__


class AugInput:
    """The inputs of an augmentation: an image (HxW or HxWxC, uint8 or float, in [0, 255]
    for uint8), optional (N, 4) XYXY boxes and an optional HxW semantic segmentation.

    Augmentations read these attributes; ``transform`` applies a Transform to all of
    them in place. Subclass it to carry other kinds of data.
    """

    def __init__(self, image: np.ndarray, *, boxes: Optional[np.ndarray] = None, sem_seg: Optional[np.ndarray] = None):
        _check_img_dtype(image)
        self.image = image
        self.boxes = boxes
        self.sem_seg = sem_seg

    def transform(self, tfm: Transform) -> None:
        """Apply `tfm` to every input present, in place."""
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = tfm.apply_box(self.boxes)
        if self.sem_seg is not None:
            self.sem_seg = tfm.apply_segmentation(self.sem_seg)

    def apply_augmentations(self, augmentations: Sequence[Union[Augmentation, Transform]]) -> TransformList:
        """Apply the augmentations in order, in place; return the resulting transform."""
        return AugmentationList(augmentations)(self)


def apply_augmentations(augmentations: List[Union[Transform, Augmentation]], inputs):
    """Apply `augmentations` to `inputs`: an AugInput (transformed in place and returned),
    or a plain image array (the transformed image is returned).

    Returns:
        (inputs or image, TransformList)
    """
    image_only = isinstance(inputs, np.ndarray)
    if image_only:
        inputs = AugInput(inputs)
    tfms = inputs.apply_augmentations(augmentations)
    return (inputs.image if image_only else inputs), tfms


# Names from older releases.
apply_transform_gens = apply_augmentations
StandardAugInput = AugInput
TransformGen = Augmentation
