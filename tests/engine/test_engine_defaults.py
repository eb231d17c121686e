"""engine.defaults: argument parser, setup, writers, DDP wrapping, DefaultTrainer (with
its build_* overridden by toys) and DefaultPredictor (a toy meta-architecture)."""
import json
import logging
import os

import numpy as np
import pytest
import torch
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import (
    DefaultPredictor,
    DefaultTrainer,
    HookBase,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    default_writers,
    hooks,
)
from detectron2.engine import defaults as defaults_module
from detectron2.evaluation import DatasetEvaluator
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.utils.events import JSONWriter, TensorboardXWriter


class _Capture(logging.Handler):
    """Collects the messages of the detectron2.engine loggers (setup_logger turns off
    their propagation, so pytest's caplog does not see them)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("detectron2.engine").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("detectron2.engine").removeHandler(self)

    @property
    def text(self):
        return "\n".join(self.messages)


# ------------------------------------------------------------------ argument parser
def test_argument_parser():
    args = default_argument_parser().parse_args(
        ["--config-file", "a.yaml", "--resume", "--num-gpus", "2", "--num-machines", "3", "--machine-rank", "1",
         "--dist-url", "tcp://h:1234", "SOLVER.BASE_LR", "0.1", "OUTPUT_DIR", "x"]
    )
    assert args.config_file == "a.yaml" and args.resume and not args.eval_only
    assert (args.num_gpus, args.num_machines, args.machine_rank, args.dist_url) == (2, 3, 1, "tcp://h:1234")
    assert args.opts == ["SOLVER.BASE_LR", "0.1", "OUTPUT_DIR", "x"]

    args = default_argument_parser().parse_args([])
    assert (args.config_file, args.num_gpus, args.num_machines, args.machine_rank) == ("", 1, 1, 0)
    port = 2**15 + 2**14 + hash(os.getuid()) % 2**14
    assert args.dist_url == f"tcp://127.0.0.1:{port}"
    assert args.opts == []


def test_argument_parser_accepts_the_slurm_scripts_arguments():
    # What scripts/hpc/slurm/train_multi_node.sbatch passes (see tests/hpc/test_slurm.py).
    argv = ["--num-gpus", "8", "--num-machines", "3", "--machine-rank", "2", "--dist-url", "tcp://gpu07:22654",
            "--config-file", "c.yaml", "--resume", "SOLVER.BASE_LR", "0.01"]
    args = default_argument_parser().parse_args(argv)
    assert (args.num_gpus, args.num_machines, args.machine_rank) == (8, 3, 2)
    assert args.opts == ["SOLVER.BASE_LR", "0.01"] and args.resume


# ------------------------------------------------------------------ setup and writers
def test_default_setup(tmp_path):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.SEED = 7
    cfg.CUDNN_BENCHMARK = True
    config_file = tmp_path / "c.yaml"
    config_file.write_text("SEED: 7\n")
    args = default_argument_parser().parse_args(["--config-file", str(config_file)])
    old = torch.backends.cudnn.benchmark
    try:
        default_setup(cfg, args)
        assert torch.initial_seed() == 7  # SEED + rank 0
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = old
    saved = get_cfg()
    saved.merge_from_file(str(tmp_path / "out" / "config.yaml"))
    assert saved.SEED == 7 and saved.OUTPUT_DIR == cfg.OUTPUT_DIR
    assert (tmp_path / "out" / "log.txt").exists()


def test_default_setup_with_lazy_config(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"train": {"output_dir": str(tmp_path / "lazy"), "seed": 11}})
    default_setup(cfg, default_argument_parser().parse_args(["--eval-only"]))
    assert torch.initial_seed() == 11
    saved = OmegaConf.load(str(tmp_path / "lazy" / "config.yaml"))
    assert saved.train.seed == 11


def test_default_writers(tmp_path, monkeypatch):
    writers = default_writers(str(tmp_path / "w"), max_iter=10)
    assert [type(w).__name__ for w in writers] == ["CommonMetricPrinter", "JSONWriter", "TensorboardXWriter"]
    for w in writers:
        w.close()

    real_find_spec = defaults_module.importlib.util.find_spec
    monkeypatch.setattr(
        defaults_module.importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real_find_spec(name, *a)
    )
    with _Capture() as caplog:
        writers = default_writers(str(tmp_path / "w2"))
    assert not any(isinstance(w, TensorboardXWriter) for w in writers)
    assert any(isinstance(w, JSONWriter) for w in writers)
    assert "pip install tensorboard" in caplog.text


def test_create_ddp_model_single_process():
    model = nn.Linear(2, 2)
    assert create_ddp_model(model, fp16_compression=True) is model


def test_auto_scale_workers():
    cfg = get_cfg()
    cfg.SOLVER.IMS_PER_BATCH = 16
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.REFERENCE_WORLD_SIZE = 8
    cfg.SOLVER.MAX_ITER = 5000
    cfg.SOLVER.WARMUP_ITERS = 100
    cfg.SOLVER.STEPS = (4000,)
    cfg.SOLVER.CHECKPOINT_PERIOD = 1000
    cfg.TEST.EVAL_PERIOD = 500
    cfg.freeze()
    new = DefaultTrainer.auto_scale_workers(cfg, 16)
    assert new.SOLVER.IMS_PER_BATCH == 32 and new.SOLVER.BASE_LR == pytest.approx(0.2)
    assert (new.SOLVER.MAX_ITER, new.SOLVER.WARMUP_ITERS, new.SOLVER.STEPS) == (2500, 50, (2000,))
    assert (new.SOLVER.CHECKPOINT_PERIOD, new.TEST.EVAL_PERIOD, new.SOLVER.REFERENCE_WORLD_SIZE) == (500, 250, 16)
    assert new.is_frozen() and cfg.SOLVER.MAX_ITER == 5000  # the input is untouched
    assert DefaultTrainer.auto_scale_workers(cfg, 8) is cfg
    bad = cfg.clone()
    bad.defrost()
    bad.SOLVER.IMS_PER_BATCH = 12
    with pytest.raises(ValueError, match="REFERENCE_WORLD_SIZE"):
        DefaultTrainer.auto_scale_workers(bad, 16)


# ------------------------------------------------------------------ DefaultTrainer
class _ToyDetector(nn.Module):
    """Takes a list of {"image": CHW tensor}; losses in training, outputs in eval."""

    def __init__(self, cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 1)

    def _score(self, batched_inputs):
        x = torch.stack([d["image"].float() for d in batched_inputs])
        return self.fc(self.bn(self.conv(x)).mean((2, 3))).squeeze(1)

    def forward(self, batched_inputs):
        score = self._score(batched_inputs)
        if self.training:
            return {"loss_cls": (score - 1).pow(2).mean(), "loss_box_reg": score.abs().mean() * 0.1}
        return [{"score": s, "image_size": tuple(d["image"].shape[1:]), "height": d.get("height")} for s, d in zip(score, batched_inputs)]


def _batches(n=2):
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(3, 16, 16, generator=g)} for _ in range(n)]


class _Forever:
    def __init__(self, batch):
        self.batch = batch

    def __iter__(self):
        while True:
            yield self.batch


class _MeanScore(DatasetEvaluator):
    def reset(self):
        self.scores = []

    def process(self, inputs, outputs):
        self.scores += [float(o["score"]) for o in outputs]

    def evaluate(self):
        return {"toy": {"mean_score": float(np.mean(self.scores))}}


class _ToyTrainer(DefaultTrainer):
    @classmethod
    def build_model(cls, cfg):
        torch.manual_seed(0)
        return _ToyDetector()

    @classmethod
    def build_train_loader(cls, cfg):
        return _Forever(_batches())

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return [_batches(1), _batches(1)]

    @classmethod
    def build_evaluator(cls, cfg, dataset_name):
        return _MeanScore()


def _trainer_cfg(out_dir, max_iter=6):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.OUTPUT_DIR = str(out_dir)
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.STEPS = (4,)
    cfg.SOLVER.WARMUP_ITERS = 2
    cfg.SOLVER.CHECKPOINT_PERIOD = 3
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.TEST.EVAL_PERIOD = 3
    cfg.DATASETS.TEST = ("toy_test",)
    return cfg


def test_default_trainer_trains_checkpoints_and_evaluates(tmp_path):
    cfg = _trainer_cfg(tmp_path)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    trainer = _ToyTrainer(cfg)
    names = [type(h).__name__ for h in trainer._hooks]
    assert names == ["IterationTimer", "LRScheduler", "PeriodicCheckpointer", "EvalHook", "PeriodicWriter"]
    trainer.resume_or_load(resume=False)
    trainer.train()

    files = set(os.listdir(tmp_path))
    assert {"model_0000002.pth", "model_0000005.pth", "model_final.pth", "metrics.json", "last_checkpoint"} <= files
    records = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert any("toy/mean_score" in r for r in records)
    assert any("total_loss" in r and "lr" in r for r in records)
    assert trainer.storage.history("toy/mean_score").values()[-1][1] == 6  # the final evaluation
    assert trainer.model is trainer._trainer.model and trainer.optimizer is trainer._trainer.optimizer


def test_default_trainer_resume(tmp_path):
    # uninterrupted reference run
    full = _ToyTrainer(_trainer_cfg(tmp_path / "full", max_iter=8))
    os.makedirs(tmp_path / "full", exist_ok=True)
    full.resume_or_load(resume=False)
    full.train()

    class Crash(HookBase):
        def after_step(self):
            if self.trainer.iter == 3:
                raise RuntimeError("node lost")

    cfg = _trainer_cfg(tmp_path / "crash", max_iter=8)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    crashed = _ToyTrainer(cfg)
    crashed.register_hooks([Crash()])
    with pytest.raises(RuntimeError, match="node lost"):
        crashed.train()
    assert (tmp_path / "crash" / "last_checkpoint").read_text() == "model_0000002.pth"

    resumed = _ToyTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 3 and resumed.iter == 2
    assert resumed.scheduler.last_epoch == 3
    resumed.train()
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(full.optimizer.param_groups[0]["lr"])


def test_default_trainer_test_with_explicit_evaluators(tmp_path):
    cfg = _trainer_cfg(tmp_path)
    model = _ToyDetector()
    results = _ToyTrainer.test(cfg, model, _MeanScore())
    assert set(results) == {"toy"}
    with pytest.raises(ValueError, match="one entry per"):
        _ToyTrainer.test(cfg, model, [_MeanScore(), _MeanScore()])


def test_default_trainer_test_without_evaluator(tmp_path):
    class NoEval(_ToyTrainer):
        @classmethod
        def build_evaluator(cls, cfg, dataset_name):
            raise NotImplementedError  # what upstream-style subclasses do

    with _Capture() as caplog:
        assert NoEval.test(_trainer_cfg(tmp_path), _ToyDetector()) == {}
    assert "No evaluator found" in caplog.text


# ------------------------------------------------------------------ DefaultPredictor
class _EngineTestToyDetector(_ToyDetector):
    """The toy detector under a name of its own in the registry."""


_ARCH = _EngineTestToyDetector.__name__
if _ARCH not in META_ARCH_REGISTRY:  # the module may be imported twice
    META_ARCH_REGISTRY.register(_EngineTestToyDetector)


def _predictor_cfg(tmp_path, fmt="BGR", device="cpu"):
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = _ARCH
    cfg.MODEL.DEVICE = str(device)
    cfg.INPUT.MIN_SIZE_TEST = 32
    cfg.INPUT.MAX_SIZE_TEST = 48
    cfg.INPUT.FORMAT = fmt
    torch.manual_seed(3)
    trained = _ToyDetector()
    trained.bn.running_mean.fill_(0.25)
    path = tmp_path / "weights.pth"
    torch.save({"model": trained.state_dict()}, path)
    cfg.MODEL.WEIGHTS = str(path)
    return cfg, trained


_IMAGE = np.random.RandomState(0).randint(0, 255, size=(40, 100, 3), dtype=np.uint8)


def test_default_predictor_loads_weights_and_resizes(tmp_path, device):
    cfg, trained = _predictor_cfg(tmp_path, device=device)
    predictor = DefaultPredictor(cfg)
    assert not predictor.model.training
    for k, v in trained.state_dict().items():
        assert torch.equal(predictor.model.state_dict()[k].cpu(), v), k
    out = predictor(_IMAGE)
    # shortest edge 40 -> 32 would make the long edge 80 > 48: capped at 48
    assert out["image_size"] == (19, 48) and out["height"] == 40
    assert out["score"].device.type == device.type


def test_default_predictor_flips_bgr_input_for_rgb_models(tmp_path):
    cfg, _ = _predictor_cfg(tmp_path, fmt="RGB")
    rgb = DefaultPredictor(cfg)
    flipped = _IMAGE[:, :, ::-1]
    resized = rgb.aug.get_transform(flipped).apply_image(flipped)
    expected = rgb.model([{"image": torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))}])[0]["score"]
    assert float(rgb(_IMAGE)["score"]) == pytest.approx(float(expected), rel=1e-5)
    bgr = DefaultPredictor(_predictor_cfg(tmp_path, fmt="BGR")[0])
    assert float(bgr(_IMAGE)["score"]) != pytest.approx(float(expected), rel=1e-5)


def test_default_predictor_bad_input(tmp_path):
    cfg, _ = _predictor_cfg(tmp_path)
    predictor = DefaultPredictor(cfg)
    with pytest.raises(TypeError, match="original_image"):
        predictor(torch.zeros(10, 10, 3))
    with pytest.raises(ValueError, match="original_image"):
        predictor(np.zeros((10, 10), dtype=np.uint8))
    cfg.INPUT.FORMAT = "L"
    with pytest.raises(ValueError, match="INPUT.FORMAT"):
        DefaultPredictor(cfg)


# ------------------------------------------------------------------ train_net entry
def test_train_net_cli_help(capsys):
    from detectron2.tools.train_net import cli

    with pytest.raises(SystemExit) as info:
        cli(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--config-file" in out and "--dist-url" in out and "--eval-only" in out


# ------------------------------------------------------------------ default evaluators
@pytest.mark.parametrize(
    "evaluator_type,expected",
    [
        ("coco", ["COCOEvaluator"]),
        ("sem_seg", ["SemSegEvaluator"]),
        ("coco_panoptic_seg", ["SemSegEvaluator", "COCOEvaluator", "COCOPanopticEvaluator"]),
        ("lvis", ["LVISEvaluator"]),
        ("pascal_voc", ["PascalVOCDetectionEvaluator"]),
        ("cityscapes_instance", ["CityscapesInstanceEvaluator"]),
        ("cityscapes_sem_seg", ["CityscapesSemSegEvaluator"]),
        ("something_else", []),
    ],
)
def test_build_evaluator_by_evaluator_type(evaluator_type, expected, monkeypatch, tmp_path):
    import detectron2.evaluation as ev
    from detectron2.data import MetadataCatalog

    class Fake(DatasetEvaluator):
        def __init__(self, name, *args, **kwargs):
            self.name, self.args, self.kwargs = name, args, kwargs

    for cls_name in ["COCOEvaluator", "SemSegEvaluator", "COCOPanopticEvaluator", "LVISEvaluator",
                     "PascalVOCDetectionEvaluator", "CityscapesInstanceEvaluator", "CityscapesSemSegEvaluator"]:
        monkeypatch.setattr(ev, cls_name, type(cls_name, (Fake,), {}))
    dataset = f"_engine_test_{evaluator_type}"
    MetadataCatalog.get(dataset).set(evaluator_type=evaluator_type)
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    evaluator = DefaultTrainer.build_evaluator(cfg, dataset)
    if not expected:
        assert evaluator is None
        return
    parts = evaluator._evaluators if len(expected) > 1 else [evaluator]
    assert [type(e).__name__ for e in parts] == expected
    assert all(e.name == dataset for e in parts)
