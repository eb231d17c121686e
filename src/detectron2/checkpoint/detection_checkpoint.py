"""The Checkpointer that reads Detectron2, Detectron1 / Caffe2 and pycls checkpoints."""
import logging
import os
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlparse

import torch
from fvcore.common.checkpoint import Checkpointer
from tabulate import tabulate
from torch.nn.parallel import DistributedDataParallel

from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from .c2_model_loading import align_and_update_state_dicts
from .safe_load import as_dict, atomic_write, load_pkl, load_torch, remove_stale_temporaries

__all__ = ["DetectionCheckpointer"]


class DetectionCheckpointer(Checkpointer):
    """fvcore's Checkpointer, plus: Detectron1 ``.pkl`` and pycls ``.pyth`` files, name
    matching heuristics (``matching_heuristics`` in the file, or ``?matching_heuristics=True``
    after the path), loading that never runs pickled code, and atomic saves."""

    def __init__(self, model: torch.nn.Module, save_dir: str = "", *, save_to_disk: Optional[bool] = None, **checkpointables: Any):
        if save_to_disk is None:
            save_to_disk = comm.is_main_process()
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.path_manager = PathManager
        self._parsed_url_during_load = None

    # ------------------------------------------------------------------ loading
    def load(self, path: str, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        assert self._parsed_url_during_load is None, "load() is not re-entrant"
        logger = logging.getLogger(__name__)
        logger.info(f"[DetectionCheckpointer] Loading from {path} ...")
        need_sync = False
        if path and isinstance(self.model, DistributedDataParallel):
            path, need_sync = self._ddp_local_path(path)
        if path:
            parsed = urlparse(path)
            self._parsed_url_during_load = parsed
            path = self.path_manager.get_local_path(parsed._replace(query="").geturl())
        try:
            ret = super().load(path, *args, **kwargs)
        finally:
            self._parsed_url_during_load = None
        if need_sync:
            logger.info("Broadcasting model states from main worker ...")
            self.model._sync_params_and_buffers()
        return ret

    def _ddp_local_path(self, path: str):
        """Under DDP each worker may see a different filesystem; the main one must have it."""
        path = self.path_manager.get_local_path(path)
        has_file = os.path.isfile(path)
        everyone = comm.all_gather(has_file)
        if not everyone[0]:
            raise OSError(f"File {path} not found on main worker.")
        if all(everyone):
            return path, False
        logging.getLogger(__name__).warning(f"Not all workers can read checkpoint {path}. Training may fail to fully resume.")
        return (path if has_file else None), True

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith(".pkl"):
            return self._load_pkl(filename)
        if filename.endswith(".pyth"):
            return self._load_pycls(filename)
        loaded = as_dict(self._torch_load(filename), filename)
        if "model" not in loaded:
            loaded = {"model": loaded}
        _check_model_state(loaded["model"], filename)
        if self._parsed_url_during_load is not None:
            queries = parse_qs(self._parsed_url_during_load.query)
            if queries.pop("matching_heuristics", ["False"]) == ["True"]:
                loaded["matching_heuristics"] = True
            if queries:
                raise ValueError(f"Unsupported query remaining: {queries}, original filename: {self._parsed_url_during_load.geturl()}")
        return loaded

    def _load_pkl(self, filename: str) -> Dict[str, Any]:
        with self.path_manager.open(filename, "rb") as f:
            data = as_dict(load_pkl(f, source=filename), filename)
        if "model" in data and "__author__" in data:
            # Detectron2 model zoo format: already our names
            self.logger.info(f"Reading a file from '{data['__author__']}'")
            return data
        # Caffe2 / Detectron1: a flat dict of blobs, maybe under "blobs"
        blobs = as_dict(data.get("blobs", data), filename)
        blobs = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
        return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}

    # ------------------------------------------------------------------ resuming
    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """fvcore's, plus: temporaries of interrupted saves are removed, and a
        ``last_checkpoint`` that is empty or names a missing file is a clear error."""
        if resume and self.save_dir and self.save_to_disk:
            for stale in remove_stale_temporaries(self.save_dir):
                self.logger.info(f"Removed {stale}, left by an interrupted checkpoint write.")
        return super().resume_or_load(path, resume=resume)

    def get_checkpoint_file(self) -> str:
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        try:
            with self.path_manager.open(save_file, "r") as f:
                last_saved = f.read().strip()
        except IOError:
            return ""  # deleted meanwhile (by another process): no checkpoint
        if not last_saved:
            raise ValueError(
                f"{save_file} is empty: expected the file name of the checkpoint to resume from. "
                f"Write the name of one of the .pth files in {self.save_dir} into it, or delete it "
                "to start from the initial weights."
            )
        path = os.path.join(self.save_dir, last_saved)
        if not self.path_manager.exists(path):
            raise FileNotFoundError(
                f"{save_file} names '{last_saved}', which does not exist in {self.save_dir}: "
                "write the name of an existing .pth file into it, or delete it to start from the initial weights."
            )
        return path

    def _load_pycls(self, filename: str) -> Dict[str, Any]:
        data = as_dict(self._torch_load(filename), filename)
        if "model_state" not in data:
            raise ValueError(f"Cannot load .pyth file {filename}; pycls checkpoints contain 'model_state'.")
        model = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
        return {"model": model, "__author__": "pycls", "matching_heuristics": True}

    def _torch_load(self, f: str) -> Any:
        return load_torch(f)

    def _load_model(self, checkpoint: Dict[str, Any]):
        if checkpoint.get("matching_heuristics", False):
            self._convert_ndarray_to_tensor(checkpoint["model"])
            checkpoint["model"] = align_and_update_state_dicts(
                self.model.state_dict(),
                checkpoint["model"],
                c2_conversion=checkpoint.get("__author__", None) == "Caffe2",
            )
        incompatible = super()._load_model(checkpoint)
        # pixel_mean/std are config-derived buffers that old checkpoints may lack
        own_buffers = dict(self.model.named_buffers(recurse=False))
        for k in ("pixel_mean", "pixel_std"):
            if k in own_buffers and k in incompatible.missing_keys:
                incompatible.missing_keys.remove(k)
        # cell anchors were persistent buffers in old checkpoints and are not anymore
        for k in list(incompatible.unexpected_keys):
            if "anchor_generator.cell_anchors" in k:
                incompatible.unexpected_keys.remove(k)
        return incompatible

    def _log_incompatible_keys(self, incompatible) -> None:
        """One table for everything that was not loaded, then fvcore's grouped messages."""
        rows: List[tuple] = [
            (k, "shape mismatch", f"checkpoint {tuple(s_ckpt)} vs model {tuple(s_model)}")
            for k, s_ckpt, s_model in incompatible.incorrect_shapes
        ]
        rows += [(k, "missing in checkpoint", "") for k in incompatible.missing_keys]
        rows += [(k, "unexpected (not in model)", "") for k in incompatible.unexpected_keys]
        if rows:
            self.logger.warning(
                "Some weights were not loaded:\n"
                + tabulate(rows, headers=["Key", "Problem", "Shapes"], tablefmt="pipe")
            )
        super()._log_incompatible_keys(incompatible)

    # ------------------------------------------------------------------- saving
    def save(self, name: str, **kwargs: Any) -> None:
        """Like fvcore's, but the file appears atomically: a failure mid-write never
        leaves a truncated ``<name>.pth`` or a ``last_checkpoint`` naming one."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        assert os.path.basename(save_file) == basename, basename
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f), self.path_manager)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(save_file, lambda f: f.write(last_filename_basename.encode("utf-8")), self.path_manager)


def _check_model_state(model: Any, filename: str) -> None:
    """The ``model`` entry must be a state dict (name -> tensor / array)."""
    if not isinstance(model, dict):
        raise ValueError(
            f"Checkpoint {filename}: its 'model' entry holds a {type(model).__name__}, expected a dict "
            "mapping parameter names to tensors (a model's state_dict())."
        )
    for key in model:
        if not isinstance(key, str):
            raise ValueError(
                f"Checkpoint {filename}: its 'model' dict has a key {key!r} of type {type(key).__name__}, "
                "expected parameter names (str)."
            )
