"""Default behaviour of the common training/inference scripts: command-line arguments,
logging and output setup, writers, DDP wrapping, DefaultPredictor and DefaultTrainer.

These cover the standard workflow; projects with other needs should write their own
from the pieces (SimpleTrainer, hooks, ...) rather than bend these.
"""
import argparse
import importlib.util
import logging
import os
import sys
import weakref
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.nn.parallel import DistributedDataParallel

import detectron2.data.transforms as T
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, LazyConfig
from detectron2.data import MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset, print_csv_format, verify_results
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler, build_optimizer
from detectron2.utils import comm
from detectron2.utils._fvcore_nn import get_bn_modules
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from . import hooks
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = [
    "create_ddp_model",
    "default_argument_parser",
    "default_setup",
    "default_writers",
    "DefaultPredictor",
    "DefaultTrainer",
]


class DeviceUnavailableError(RuntimeError, AssertionError):
    """cfg.MODEL.DEVICE names a device this machine does not have. Derives from both
    types torch raises in that case (RuntimeError without a driver, AssertionError for a
    CPU-only build), so callers catching either still catch it."""


def _check_device(cfg: CfgNode) -> None:
    """Raise DeviceUnavailableError, saying to set ``MODEL.DEVICE cpu``, when the config's
    CUDA device cannot be used here; torch's own error ("Found no NVIDIA driver") would
    only come later and not say which setting to change."""
    device = torch.device(cfg.MODEL.DEVICE)
    if device.type != "cuda":
        return
    if torch.version.cuda is None:
        reason = f"the installed torch {torch.__version__} is a CPU-only build"
    elif not torch.cuda.is_available():
        reason = "no CUDA GPU is usable here (torch.cuda.is_available() is False: no GPU or no NVIDIA driver)"
    elif device.index is not None and device.index >= torch.cuda.device_count():
        reason = f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    else:
        return
    raise DeviceUnavailableError(
        f"cfg.MODEL.DEVICE is {cfg.MODEL.DEVICE!r} but {reason}. To run on the CPU set MODEL.DEVICE cpu "
        "(`cfg.MODEL.DEVICE = \"cpu\"` in Python, or `MODEL.DEVICE cpu` at the end of the command line)."
    )


def create_ddp_model(model: torch.nn.Module, *, fp16_compression: bool = False, **kwargs: Any) -> torch.nn.Module:
    """Wrap ``model`` in DistributedDataParallel when there is more than one process.

    Args:
        fp16_compression: all-reduce gradients in fp16 (halves the traffic).
        kwargs: for DistributedDataParallel. ``device_ids`` defaults to the local rank
            for a model on CUDA (CPU models under gloo take none).
    """
    if comm.get_world_size() == 1:
        return model
    if "device_ids" not in kwargs and any(p.is_cuda for p in model.parameters()):
        kwargs["device_ids"] = [comm.get_local_rank()]
    ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def _default_port() -> int:
    # Stable per user, so that two users' jobs on one machine do not collide.
    uid = os.getuid() if sys.platform != "win32" else 1
    return 2**15 + 2**14 + hash(uid) % 2**14


def default_argument_parser(epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """The arguments of the standard training script: --config-file, --resume,
    --eval-only, --num-gpus, --num-machines, --machine-rank, --dist-url and trailing
    config overrides (``opts``)."""
    prog = sys.argv[0] if sys.argv and sys.argv[0] else "train_net.py"
    parser = argparse.ArgumentParser(
        epilog=epilog
        or f"""
Examples:

Run on single machine:
    $ {prog} --num-gpus 8 --config-file cfg.yaml

Change some config options:
    $ {prog} --config-file cfg.yaml MODEL.WEIGHTS /path/to/weight.pth SOLVER.BASE_LR 0.001

Run on multiple machines:
    (machine0)$ {prog} --machine-rank 0 --num-machines 2 --dist-url <URL> [--other-flags]
    (machine1)$ {prog} --machine-rank 1 --num-machines 2 --dist-url <URL> [--other-flags]
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Whether to attempt to resume from the checkpoint directory. "
        "See documentation of `DefaultTrainer.resume_or_load()` for what it means.",
    )
    parser.add_argument("--eval-only", action="store_true", help="perform evaluation only")
    parser.add_argument("--num-gpus", type=int, default=1, help="number of gpus *per machine* (CPU processes without CUDA)")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)")
    parser.add_argument(
        "--dist-url",
        default="tcp://127.0.0.1:{}".format(_default_port()),
        help="initialization URL for pytorch distributed backend. See "
        "https://pytorch.org/docs/stable/distributed.html for details.",
    )
    parser.add_argument(
        "opts",
        help='Modify config options at the end of the command. For Yacs configs, use space-separated '
        '"PATH.KEY VALUE" pairs. For python-based LazyConfig, use "path.key=value".',
        default=None,
        nargs=argparse.REMAINDER,
    )
    return parser


def _try_get_key(cfg: Any, *keys: str, default: Any = None) -> Any:
    """The value of the first of ``keys`` present in a CfgNode or LazyConfig."""
    if isinstance(cfg, CfgNode):
        cfg = OmegaConf.create(cfg.dump())
    missing = object()
    for k in keys:
        value = OmegaConf.select(cfg, k, default=missing)
        if value is not missing:
            return value
    return default


def _highlight(code: str, filename: str) -> str:
    """Syntax-highlighted ``code`` for the console when pygments is installed."""
    try:
        import pygments
        from pygments.formatters import Terminal256Formatter
        from pygments.lexers import Python3Lexer, YamlLexer
    except ImportError:
        return code
    lexer = Python3Lexer() if filename.endswith(".py") else YamlLexer()
    return pygments.highlight(code, lexer, Terminal256Formatter(style="monokai"))


def default_setup(cfg: Any, args: argparse.Namespace) -> None:
    """At the start of a job: create the output directory, set up the loggers, log the
    environment, arguments and config, save the config to ``OUTPUT_DIR/config.yaml``,
    seed the RNGs (SEED + rank, or random when SEED < 0) and set cudnn.benchmark.

    Args:
        cfg: a CfgNode or a LazyConfig (keys ``train.output_dir``, ``train.seed``, ...).
        args: the parsed command line (default_argument_parser's).
    """
    output_dir = _try_get_key(cfg, "OUTPUT_DIR", "output_dir", "train.output_dir")
    if comm.is_main_process() and output_dir:
        PathManager.mkdirs(output_dir)

    rank = comm.get_rank()
    setup_logger(output_dir, distributed_rank=rank, name="fvcore")
    logger = setup_logger(output_dir, distributed_rank=rank)

    logger.info("Rank of current process: {}. World size: {}".format(rank, comm.get_world_size()))
    logger.info("Environment info:\n" + collect_env_info())
    logger.info("Command line arguments: " + str(args))
    if getattr(args, "config_file", ""):
        with PathManager.open(args.config_file, "r") as f:
            contents = f.read()
        logger.info("Contents of args.config_file={}:\n{}".format(args.config_file, _highlight(contents, args.config_file)))

    if comm.is_main_process() and output_dir:
        # The full config, so that the run can be reproduced from its output alone.
        path = os.path.join(output_dir, "config.yaml")
        if isinstance(cfg, CfgNode):
            logger.info("Running with full config:\n{}".format(_highlight(cfg.dump(), ".yaml")))
            with PathManager.open(path, "w") as f:
                f.write(cfg.dump())
        else:
            LazyConfig.save(cfg, path)
        logger.info("Full config saved to {}".format(path))

    seed = _try_get_key(cfg, "SEED", "train.seed", default=-1)
    seed_all_rng(None if seed < 0 else seed + rank)  # + rank: workers draw different data

    # cudnn benchmark pays off only for fixed input sizes, i.e. training.
    if not getattr(args, "eval_only", False):
        torch.backends.cudnn.benchmark = _try_get_key(cfg, "CUDNN_BENCHMARK", "train.cudnn_benchmark", default=False)


def default_writers(output_dir: str, max_iter: Optional[int] = None) -> List[EventWriter]:
    """Console (CommonMetricPrinter), ``metrics.json`` and TensorBoard writers.

    TensorBoard is optional: without the ``tensorboard`` package its writer is left out
    with a warning saying how to get it.
    """
    PathManager.mkdirs(output_dir)
    writers: List[EventWriter] = [
        CommonMetricPrinter(max_iter),
        JSONWriter(os.path.join(output_dir, "metrics.json")),
    ]
    if importlib.util.find_spec("tensorboard") is None:
        logging.getLogger(__name__).warning(
            "The tensorboard package is not installed: TensorBoard event files will not be written. "
            "Install it with `pip install tensorboard` (or `conda install tensorboard`) to get them."
        )
    else:
        writers.append(TensorboardXWriter(output_dir))
    return writers


class DefaultPredictor:
    """End-to-end inference on one image, the way a config describes it: builds the model
    (eval mode) on cfg.MODEL.DEVICE, loads cfg.MODEL.WEIGHTS, resizes the shortest edge
    to INPUT.MIN_SIZE_TEST (at most INPUT.MAX_SIZE_TEST) and converts from the caller's
    BGR/RGB to the model's INPUT.FORMAT.

    Example::

        pred = DefaultPredictor(cfg)
        outputs = pred(cv2.imread("input.jpg"))   # {"instances": Instances, ...}
    """

    def __init__(self, cfg: CfgNode):
        self.cfg = cfg.clone()  # the caller may change cfg afterwards
        _check_device(self.cfg)
        self.model = build_model(self.cfg)
        self.model.eval()
        if len(cfg.DATASETS.TEST):
            self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])

        checkpointer = DetectionCheckpointer(self.model)
        checkpointer.load(cfg.MODEL.WEIGHTS)

        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"cfg.INPUT.FORMAT must be 'RGB' or 'BGR' for DefaultPredictor, got {self.input_format!r}")

    def __call__(self, original_image: np.ndarray) -> Dict[str, Any]:
        """
        Args:
            original_image: an HxWx3 image, in BGR channel order (as cv2.imread gives).

        Returns:
            The model's outputs for the one image (e.g. {"instances": Instances}), in
            the coordinates of ``original_image``.
        """
        if not isinstance(original_image, np.ndarray):
            raise TypeError(f"original_image must be a numpy array (H, W, 3), got {type(original_image).__name__}")
        if original_image.ndim != 3 or original_image.shape[2] != 3:
            raise ValueError(f"original_image must have shape (H, W, 3), got {tuple(original_image.shape)}")
        with torch.no_grad():
            if self.input_format == "RGB":
                # The input is BGR: flip the channels for an RGB model.
                original_image = original_image[:, :, ::-1]
            height, width = original_image.shape[:2]
            image = self.aug.get_transform(original_image).apply_image(original_image)
            image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
            image = image.to(self.cfg.MODEL.DEVICE)
            inputs = {"image": image, "height": height, "width": width}
            return self.model([inputs])[0]


class DefaultTrainer(TrainerBase):
    """A trainer with the standard setup, built from a config: the model, optimizer, LR
    scheduler, train loader, DDP, a DetectionCheckpointer on OUTPUT_DIR and the default
    hooks (timer, LR scheduler, precise BN, periodic checkpoints, evaluation, writers).

    Customize by overriding the ``build_*`` classmethods, e.g. ``build_evaluator``.
    Example::

        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load()   # resume from OUTPUT_DIR/last_checkpoint, or load MODEL.WEIGHTS
        trainer.train()

    Attributes:
        scheduler, checkpointer, cfg; model, data_loader and optimizer are those of the
        inner SimpleTrainer/AMPTrainer.
    """

    def __init__(self, cfg: CfgNode):
        super().__init__()
        logger = logging.getLogger("detectron2")
        if not logger.isEnabledFor(logging.INFO):  # default_setup was not called
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        _check_device(cfg)
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)

        # broadcast_buffers=False: BN statistics stay per-process, as in upstream training.
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(
            model,
            cfg.OUTPUT_DIR,
            trainer=weakref.proxy(self),  # the trainer's state goes into checkpoints
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg

        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume`` and a checkpoint in OUTPUT_DIR: load it (model, optimizer,
        scheduler, iteration) and continue after its iteration. Otherwise load only the
        model weights of cfg.MODEL.WEIGHTS and start at iteration 0."""
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            # The checkpoint holds the iteration that had just finished.
            self.start_iter = self.iter + 1

    def build_hooks(self) -> List[hooks.HookBase]:
        """The default hooks: IterationTimer, LRScheduler, PreciseBN (when enabled),
        PeriodicCheckpointer and PeriodicWriter (main process), EvalHook."""
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.DATALOADER.NUM_WORKERS = 0  # precise BN's loader: no worker processes

        ret: List[Optional[hooks.HookBase]] = [
            hooks.IterationTimer(),
            hooks.LRScheduler(),
            hooks.PreciseBN(
                cfg.TEST.EVAL_PERIOD,  # right before each evaluation
                self.model,
                self.build_train_loader(cfg),
                cfg.TEST.PRECISE_BN.NUM_ITER,
            )
            if cfg.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model)
            else None,
        ]
        # Checkpoints before evaluation: a crash in evaluation loses no training.
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))

        def test_and_save_results():
            self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results

        # On all processes: evaluation is distributed.
        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process():
            # Last, so that it writes the evaluation metrics too.
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=20))
        return ret

    def build_writers(self) -> List[EventWriter]:
        """The writers of the PeriodicWriter hook: default_writers(OUTPUT_DIR, max_iter)."""
        return default_writers(self.cfg.OUTPUT_DIR, self.max_iter)

    def train(self) -> Optional[Dict[str, Any]]:
        """Train from ``start_iter`` to cfg.SOLVER.MAX_ITER; returns the last evaluation
        results when cfg.TEST.EXPECTED_RESULTS asks to verify them."""
        super().train(self.start_iter, self.max_iter)
        if len(self.cfg.TEST.EXPECTED_RESULTS) and comm.is_main_process():
            if not hasattr(self, "_last_eval_results"):
                raise RuntimeError("No evaluation results obtained during training!")
            verify_results(self.cfg, self._last_eval_results)
            return self._last_eval_results
        return None

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def state_dict(self) -> Dict[str, Any]:
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._trainer.load_state_dict(state_dict["_trainer"])

    @classmethod
    def build_model(cls, cfg: CfgNode) -> torch.nn.Module:
        """detectron2.modeling.build_model(cfg), logged."""
        model = build_model(cfg)
        logging.getLogger(__name__).info("Model:\n{}".format(model))
        return model

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
        """detectron2.solver.build_optimizer(cfg, model)."""
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg: CfgNode, optimizer: torch.optim.Optimizer):
        """detectron2.solver.build_lr_scheduler(cfg, optimizer)."""
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        """detectron2.data.build_detection_train_loader(cfg)."""
        return build_detection_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        """detectron2.data.build_detection_test_loader(cfg, dataset_name)."""
        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str) -> Optional[DatasetEvaluator]:
        """The evaluator(s) for the dataset's ``evaluator_type`` metadata ("coco",
        "lvis", "sem_seg", "coco_panoptic_seg", "pascal_voc", "cityscapes_instance",
        "cityscapes_sem_seg"), writing to OUTPUT_DIR/inference; None for other types.
        Override it for custom evaluation."""
        from ._evaluators import evaluator_for_dataset

        return evaluator_for_dataset(cfg, dataset_name, os.path.join(cfg.OUTPUT_DIR, "inference"))

    @classmethod
    def test(
        cls,
        cfg: CfgNode,
        model: torch.nn.Module,
        evaluators: Union[None, DatasetEvaluator, Sequence[DatasetEvaluator]] = None,
    ) -> Dict[str, Any]:
        """Evaluate ``model`` on each of cfg.DATASETS.TEST.

        Args:
            evaluators: one per test dataset; None: ``build_evaluator`` for each.

        Returns:
            dataset name -> results (the results alone when there is one dataset).
        """
        logger = logging.getLogger(__name__)
        if isinstance(evaluators, DatasetEvaluator):
            evaluators = [evaluators]
        if evaluators is not None and len(cfg.DATASETS.TEST) != len(evaluators):
            raise ValueError(
                f"evaluators must have one entry per cfg.DATASETS.TEST: {len(evaluators)} != {len(cfg.DATASETS.TEST)}"
            )

        results: Dict[str, Any] = OrderedDict()
        for idx, dataset_name in enumerate(cfg.DATASETS.TEST):
            data_loader = cls.build_test_loader(cfg, dataset_name)
            if evaluators is not None:
                evaluator = evaluators[idx]
            else:
                try:
                    evaluator = cls.build_evaluator(cfg, dataset_name)
                except NotImplementedError:  # subclasses written for upstream do this
                    evaluator = None
            if evaluator is None:
                logger.warning(
                    "No evaluator found. Use `DefaultTrainer.test(evaluators=)`, "
                    "or implement its `build_evaluator` method."
                )
                results[dataset_name] = {}
                continue
            results_i = inference_on_dataset(model, data_loader, evaluator)
            results[dataset_name] = results_i
            if comm.is_main_process():
                if not isinstance(results_i, dict):
                    raise TypeError("Evaluator must return a dict on the main process. Got {} instead.".format(results_i))
                logger.info("Evaluation results for {} in csv format:".format(dataset_name))
                print_csv_format(results_i)

        if len(results) == 1:
            results = list(results.values())[0]
        return results

    @staticmethod
    def auto_scale_workers(cfg: CfgNode, num_workers: int) -> CfgNode:
        """Rescale the solver for ``num_workers`` processes when cfg.SOLVER.
        REFERENCE_WORLD_SIZE names the world size the config was written for: the batch
        size and LR scale linearly, the iteration counts inversely (linear scaling
        rule). Returns a new config; unchanged when REFERENCE_WORLD_SIZE is 0 or equal.

        Example: IMS_PER_BATCH 16, BASE_LR 0.1, REFERENCE_WORLD_SIZE 8, MAX_ITER 5000 on
        16 workers -> IMS_PER_BATCH 32, BASE_LR 0.2, MAX_ITER 2500.
        """
        old_world_size = cfg.SOLVER.REFERENCE_WORLD_SIZE
        if old_world_size == 0 or old_world_size == num_workers:
            return cfg
        cfg = cfg.clone()
        frozen = cfg.is_frozen()
        cfg.defrost()

        if cfg.SOLVER.IMS_PER_BATCH % old_world_size != 0:
            raise ValueError(
                f"Invalid REFERENCE_WORLD_SIZE in config: SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} "
                f"is not divisible by SOLVER.REFERENCE_WORLD_SIZE={old_world_size}"
            )
        scale = num_workers / old_world_size
        bs = cfg.SOLVER.IMS_PER_BATCH = int(round(cfg.SOLVER.IMS_PER_BATCH * scale))
        lr = cfg.SOLVER.BASE_LR = cfg.SOLVER.BASE_LR * scale
        max_iter = cfg.SOLVER.MAX_ITER = int(round(cfg.SOLVER.MAX_ITER / scale))
        warmup_iter = cfg.SOLVER.WARMUP_ITERS = int(round(cfg.SOLVER.WARMUP_ITERS / scale))
        cfg.SOLVER.STEPS = tuple(int(round(s / scale)) for s in cfg.SOLVER.STEPS)
        cfg.TEST.EVAL_PERIOD = int(round(cfg.TEST.EVAL_PERIOD / scale))
        cfg.SOLVER.CHECKPOINT_PERIOD = int(round(cfg.SOLVER.CHECKPOINT_PERIOD / scale))
        cfg.SOLVER.REFERENCE_WORLD_SIZE = num_workers  # maintain invariant
        logging.getLogger(__name__).info(
            f"Auto-scaling the config to batch_size={bs}, learning_rate={lr}, max_iter={max_iter}, warmup={warmup_iter}."
        )
        if frozen:
            cfg.freeze()
        return cfg


# model, data_loader and optimizer live in the inner trainer; expose them here too.
for _attr in ["model", "data_loader", "optimizer"]:
    setattr(
        DefaultTrainer,
        _attr,
        property(
            lambda self, x=_attr: getattr(self._trainer, x),
            lambda self, value, x=_attr: setattr(self._trainer, x, value),
        ),
    )
