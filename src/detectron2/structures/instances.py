"""Per-image instance annotations or predictions with arbitrary named fields."""
import itertools
import warnings
from typing import Any, Dict, List, Tuple, Union

import torch

from detectron2.layers._errors import TypeAssertionError, ValueAssertionError


class FieldMismatchError(ValueError, KeyError):
    """Instances with different fields; also the KeyError that looking a field up raised."""

    __str__ = Exception.__str__  # KeyError would quote the message


class Instances:
    """A set of N instances of one image, stored as fields of length N.

    Fields are set and read as attributes (``instances.gt_boxes = Boxes(...)``) or with
    set/get/has/remove. Every field must support ``len`` and indexing; fields with a
    ``.to`` method follow device moves; ``Instances.cat`` needs their type to be one of
    tensor, list or a class with a ``cat`` classmethod/staticmethod.
    """

    def __init__(self, image_size: Tuple[int, int], **kwargs: Any):
        """image_size is the (height, width) of the image; kwargs are initial fields."""
        self._image_size = image_size
        self._fields: Dict[str, Any] = {}
        for k, v in kwargs.items():
            self.set(k, v)

    @property
    def image_size(self) -> Tuple[int, int]:
        return self._image_size

    def __setattr__(self, name: str, val: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, val)
        else:
            self.set(name, val)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not found normally; guards against recursion while unpickling.
        if name == "_fields" or name not in self._fields:
            raise AttributeError(f"Cannot find field '{name}' in the given Instances!")
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        """Set a field; its length must match the fields already present."""
        with warnings.catch_warnings(record=True):
            data_len = len(value)
        if len(self._fields) and data_len != len(self):
            raise ValueAssertionError(f"Adding a field of length {data_len} to a Instances of length {len(self)}")
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        del self._fields[name]

    def get(self, name: str) -> Any:
        return self._fields[name]

    def get_fields(self) -> Dict[str, Any]:
        """The name -> value dict of all fields (modifying it modifies the Instances)."""
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> "Instances":
        """A new Instances with every field that has a ``to`` method moved/cast."""
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            if hasattr(v, "to"):
                v = v.to(*args, **kwargs)
            ret.set(k, v)
        return ret

    def __getitem__(self, item: Union[int, slice, torch.BoolTensor]) -> "Instances":
        """Index every field alike; an int keeps a length-1 Instances."""
        if type(item) == int:
            if item >= len(self) or item < -len(self):
                raise IndexError("Instances index out of range!")
            # A slice keeps each field's container type (a list stays a list).
            item = slice(item, None, len(self))
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            ret.set(k, v[item])
        return ret

    def __len__(self) -> int:
        for v in self._fields.values():
            return v.__len__()
        raise TypeError("Empty Instances does not support __len__!")

    def __iter__(self):
        raise TypeError("`Instances` object is not iterable!")

    @staticmethod
    def cat(instance_lists: List["Instances"]) -> "Instances":
        """Concatenate Instances of the same image size and the same fields."""
        if not isinstance(instance_lists, (list, tuple)) or len(instance_lists) == 0:
            raise ValueAssertionError("Instances.cat: instance_lists must be a non-empty list of Instances")
        for i in instance_lists:
            if not isinstance(i, Instances):
                raise TypeAssertionError(f"Instances.cat: every element must be Instances, got {type(i)}")
        if len(instance_lists) == 1:
            return instance_lists[0]

        image_size = instance_lists[0].image_size
        if not isinstance(image_size, torch.Tensor):  # traced sizes cannot be compared
            for i in instance_lists[1:]:
                if i.image_size != image_size:
                    raise ValueAssertionError(f"Instances.cat: image sizes differ: {i.image_size} vs {image_size}")
        fields = list(instance_lists[0]._fields.keys())
        for j, i in enumerate(instance_lists[1:], start=1):
            # As upstream: the first instance's fields are concatenated, extra fields of the
            # others are dropped (add_ground_truth_to_proposals relies on it); a missing one is an error.
            missing = [k for k in fields if k not in i._fields]
            if missing:
                raise FieldMismatchError(
                    f"Instances.cat: every instance needs the fields of instance_lists[0] {sorted(fields)}; "
                    f"instance_lists[{j}] lacks {sorted(missing)}"
                )
        ret = Instances(image_size)
        for k in fields:
            values = [i.get(k) for i in instance_lists]
            v0 = values[0]
            if isinstance(v0, torch.Tensor):
                values = torch.cat(values, dim=0)
            elif isinstance(v0, list):
                values = list(itertools.chain(*values))
            elif hasattr(type(v0), "cat"):
                values = type(v0).cat(values)
            else:
                raise ValueError(f"Unsupported type {type(v0)} for concatenation")
            ret.set(k, values)
        return ret

    def __str__(self) -> str:
        s = self.__class__.__name__ + "("
        s += f"num_instances={len(self)}, "
        s += f"image_height={self._image_size[0]}, "
        s += f"image_width={self._image_size[1]}, "
        s += "fields=[{}])".format(", ".join(f"{k}: {v}" for k, v in self._fields.items()))
        return s

    __repr__ = __str__
