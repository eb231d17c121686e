"""
ImageNet classification with a torchvision ResNet-50 and torchvision's ImageNet dataset,
trained by detectron2's engine: detectron2 as a general trainer for any model and task.

    python tools/lazyconfig_train_net.py --config-file configs/Misc/torchvision_imagenet_R_50.py \
        --num-gpus 8 dataloader.train.dataset.root=/path/to/imagenet/
"""
import torch
import torchvision
from fvcore.common.param_scheduler import MultiStepParamScheduler
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.transforms import transforms as T

from detectron2.config import LazyCall as L
from detectron2.data.samplers import InferenceSampler, TrainingSampler
from detectron2.evaluation import DatasetEvaluator
from detectron2.model_zoo import get_config
from detectron2.solver import WarmupParamScheduler
from detectron2.solver.build import get_default_optimizer_params
from detectron2.utils import comm

# The model, loader and evaluator below would live in a project's own module; they are
# here to keep the example in one file.


def build_data_loader(dataset, batch_size: int, num_workers: int, training: bool = True):
    sampler = (TrainingSampler if training else InferenceSampler)(len(dataset))
    return torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=batch_size, num_workers=num_workers, pin_memory=True
    )


class ClassificationNet(nn.Module):
    """Wraps a classifier for the trainer: (image, label) batches in, the loss in
    training, logits otherwise."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def device(self):
        return next(self.model.parameters()).device

    def forward(self, inputs):
        image, label = inputs
        logits = self.model(image.to(self.device))
        if self.training:
            return F.cross_entropy(logits, label.to(self.device))
        return logits


class ClassificationAcc(DatasetEvaluator):
    """Top-1 accuracy over all processes."""

    def reset(self):
        self.corr = self.total = 0

    def process(self, inputs, outputs):
        _, label = inputs
        self.corr += (outputs.argmax(dim=1).cpu() == label.cpu()).sum().item()
        self.total += len(label)

    def evaluate(self):
        gathered = comm.all_gather([self.corr, self.total])
        corr = sum(c for c, _ in gathered)
        total = sum(t for _, t in gathered)
        return {"accuracy": corr / total}


_NORMALIZE = L(T.Normalize)(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

dataloader = OmegaConf.create()
dataloader.train = L(build_data_loader)(
    dataset=L(torchvision.datasets.ImageNet)(
        root="/path/to/imagenet",
        split="train",
        transform=L(T.Compose)(
            transforms=[L(T.RandomResizedCrop)(size=224), L(T.RandomHorizontalFlip)(), T.ToTensor(), _NORMALIZE]
        ),
    ),
    batch_size=256 // 8,
    num_workers=4,
    training=True,
)
dataloader.test = L(build_data_loader)(
    dataset=L(torchvision.datasets.ImageNet)(
        root="${...train.dataset.root}",
        split="val",
        transform=L(T.Compose)(
            transforms=[L(T.Resize)(size=256), L(T.CenterCrop)(size=224), T.ToTensor(), _NORMALIZE]
        ),
    ),
    batch_size=256 // 8,
    num_workers=4,
    training=False,
)
dataloader.evaluator = L(ClassificationAcc)()

# the ResNet itself is built when the config is loaded (a plain object, as upstream)
model = L(ClassificationNet)(model=ResNet(block=Bottleneck, layers=[3, 4, 6, 3], zero_init_residual=True))

optimizer = L(torch.optim.SGD)(params=L(get_default_optimizer_params)(), lr=0.1, momentum=0.9, weight_decay=1e-4)

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01, 0.001], milestones=[30, 60, 90, 100]),
    warmup_length=1 / 100,
    warmup_factor=0.1,
)

train = get_config("common/train.py").train
train.init_checkpoint = None
train.max_iter = 100 * 1281167 // 256
