"""Scripting models that use Instances, and dumping TorchScript code/IR for debugging."""
import os
from typing import Dict, Union

import torch
from torch import nn

from detectron2.utils.file_io import PathManager

from .torchscript_patch import freeze_training_mode, patch_instances

__all__ = ["scripting_with_instances", "export_torchscript_with_instances", "dump_torchscript_IR"]


def scripting_with_instances(model: nn.Module, fields: Dict[str, type]) -> torch.jit.ScriptModule:
    """``torch.jit.script`` a model in eval mode whose code uses :class:`Instances`.

    Instances gets its fields at run time, which TorchScript cannot type. Every field the
    model reads or writes (inputs and outputs alike) is therefore declared in ``fields``,
    e.g. ``{"proposal_boxes": Boxes, "objectness_logits": torch.Tensor,
    "pred_boxes": Boxes, "scores": torch.Tensor, "pred_classes": torch.Tensor}``; the model
    is compiled with a generated statically typed class in place of Instances. After the
    call Instances is restored, so another model can be scripted with other fields.

    Returns the ScriptModule. Instances it returns are of the generated class; turn them
    into regular ones with :func:`detectron2.utils.testing.convert_scripted_instances`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"scripting_with_instances: model must be an nn.Module, got {type(model)}")
    if model.training:
        raise AssertionError(
            "scripting_with_instances: only models in evaluation mode can be scripted; call model.eval() first"
        )
    with freeze_training_mode(model), patch_instances(fields):
        return torch.jit.script(model)


# upstream's older name of the same function
export_torchscript_with_instances = scripting_with_instances


def _script_module_of(mod):
    """The ScriptModule behind a traced module (traced modules wrap one)."""
    return getattr(mod, "_actual_script_module", mod)


def _code_of(mod) -> Union[str, None]:
    for get in (lambda m: _script_module_of(m)._c.code, lambda m: m.code):
        try:
            return get(mod)
        except (AttributeError, RuntimeError):
            continue
    return None


def dump_torchscript_IR(model: Union[torch.jit.ScriptModule, torch.jit.TracedModule], dir: str) -> None:
    """Write the TorchScript code and IR of a traced or scripted module into ``dir``:
    ``model_ts_code.txt`` (code of every submodule), ``model_ts_IR.txt`` (IR of every
    submodule), ``model_ts_IR_inlined.txt`` (the whole graph inlined) and ``model.txt``.
    """
    if not isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            f"dump_torchscript_IR: model must be a traced or scripted module (torch.jit.ScriptModule), got {type(model)}"
        )
    PathManager.mkdirs(dir)

    def dump_code(f, prefix: str, mod) -> None:
        name = prefix or "root model"
        code = _code_of(mod)
        kind = getattr(mod, "original_name", type(mod).__name__)
        if code is None:
            f.write(f"Could not find code for {name} (type={kind})\n\n")
        else:
            f.write(f"\nCode for {name}, type={kind}:\n{code}\n" + "-" * 80)
        for child_name, child in mod.named_children():
            dump_code(f, prefix + "." + child_name, child)

    with PathManager.open(os.path.join(dir, "model_ts_code.txt"), "w") as f:
        dump_code(f, "", model)
    with PathManager.open(os.path.join(dir, "model_ts_IR.txt"), "w") as f:
        try:
            f.write(_script_module_of(model)._c.dump_to_str(True, False, False))
        except (AttributeError, RuntimeError):  # private API: absent in some torch versions
            f.write(str(model.graph))
    with PathManager.open(os.path.join(dir, "model_ts_IR_inlined.txt"), "w") as f:
        f.write(str(model.inlined_graph))
    with PathManager.open(os.path.join(dir, "model.txt"), "w") as f:
        f.write(str(model))
