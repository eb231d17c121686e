"""The default config: every key and value of ``get_cfg()``.

Conventions of the keys: ``*_TRAIN`` / ``*_TEST`` split values by phase; image sizes
are in pixels; lists of per-level values use one entry per feature map, or a single
entry shared by all levels. Upstream YAML files only set keys that exist here.
"""
from .config import CfgNode as CN

_C = CN()

# Bumped whenever keys are renamed; compat.py converts between versions.
_C.VERSION = 2

# -----------------------------------------------------------------------------
# Model
# -----------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.LOAD_PROPOSALS = False
_C.MODEL.MASK_ON = False
_C.MODEL.KEYPOINT_ON = False
_C.MODEL.DEVICE = "cuda"
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
# A checkpoint path or URL (detectron2://, https://) to initialize the model from.
_C.MODEL.WEIGHTS = ""
# Per-channel normalization of input images, in the channel order of INPUT.FORMAT
# (BGR by default). A std of 1 matches Caffe2-trained backbones (values in 0-255).
_C.MODEL.PIXEL_MEAN = [103.530, 116.280, 123.675]
_C.MODEL.PIXEL_STD = [1.0, 1.0, 1.0]

# -----------------------------------------------------------------------------
# Input
# -----------------------------------------------------------------------------
_C.INPUT = CN()
# The shorter image side during training: one size is picked per image.
_C.INPUT.MIN_SIZE_TRAIN = (800,)
# "choice": pick from MIN_SIZE_TRAIN; "range": sample in [min, max] of MIN_SIZE_TRAIN.
_C.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
_C.INPUT.MAX_SIZE_TRAIN = 1333
# 0 disables resizing at test time.
_C.INPUT.MIN_SIZE_TEST = 800
_C.INPUT.MAX_SIZE_TEST = 1333
# "horizontal", "vertical" or "none".
_C.INPUT.RANDOM_FLIP = "horizontal"

_C.INPUT.CROP = CN({"ENABLED": False})
# "relative_range", "relative", "absolute" or "absolute_range" (see RandomCrop).
_C.INPUT.CROP.TYPE = "relative_range"
_C.INPUT.CROP.SIZE = [0.9, 0.9]

# Image channel order given to the model: a PIL mode, or "BGR"/"YUV-BT.601".
_C.INPUT.FORMAT = "BGR"
# "polygon" or "bitmask" for instance masks.
_C.INPUT.MASK_FORMAT = "polygon"

# -----------------------------------------------------------------------------
# Datasets: names registered in DatasetCatalog
# -----------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ()
# Precomputed proposal files, one per TRAIN dataset (used with MODEL.LOAD_PROPOSALS).
_C.DATASETS.PROPOSAL_FILES_TRAIN = ()
_C.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN = 2000
_C.DATASETS.TEST = ()
_C.DATASETS.PROPOSAL_FILES_TEST = ()
_C.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST = 1000

# -----------------------------------------------------------------------------
# Data loader
# -----------------------------------------------------------------------------
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
# Batch images of similar aspect ratio together (less padding).
_C.DATALOADER.ASPECT_RATIO_GROUPING = True
# "TrainingSampler", "RepeatFactorTrainingSampler" or "RandomSubsetTrainingSampler".
_C.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
# RepeatFactorTrainingSampler: repeat images with categories rarer than this frequency.
_C.DATALOADER.REPEAT_THRESHOLD = 0.0
_C.DATALOADER.REPEAT_SQRT = True
# Drop training images without annotations.
_C.DATALOADER.FILTER_EMPTY_ANNOTATIONS = True

# ---------------------------------------------------------------------------- #
# Backbone
# ---------------------------------------------------------------------------- #
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = "build_resnet_backbone"
# Stages up to and including this one are frozen (0: train all, 1: freeze the stem).
_C.MODEL.BACKBONE.FREEZE_AT = 2

# ---------------------------------------------------------------------------- #
# FPN
# ---------------------------------------------------------------------------- #
_C.MODEL.FPN = CN()
# Backbone features FPN builds on, e.g. ["res2", "res3", "res4", "res5"].
_C.MODEL.FPN.IN_FEATURES = []
_C.MODEL.FPN.OUT_CHANNELS = 256
# "" (no norm), "GN", "SyncBN", ...
_C.MODEL.FPN.NORM = ""
# How top-down and lateral features combine: "sum" or "avg".
_C.MODEL.FPN.FUSE_TYPE = "sum"

# ---------------------------------------------------------------------------- #
# Proposal generator
# ---------------------------------------------------------------------------- #
_C.MODEL.PROPOSAL_GENERATOR = CN()
# "RPN", "RRPN" or "PrecomputedProposals".
_C.MODEL.PROPOSAL_GENERATOR.NAME = "RPN"
# Proposals with a side shorter than this (input-image pixels) are dropped.
_C.MODEL.PROPOSAL_GENERATOR.MIN_SIZE = 0

# ---------------------------------------------------------------------------- #
# Anchor generator
# ---------------------------------------------------------------------------- #
_C.MODEL.ANCHOR_GENERATOR = CN()
_C.MODEL.ANCHOR_GENERATOR.NAME = "DefaultAnchorGenerator"
# Anchor sizes (sqrt of area, absolute pixels), a list per feature map (or one list
# shared by all maps).
_C.MODEL.ANCHOR_GENERATOR.SIZES = [[32, 64, 128, 256, 512]]
# Aspect ratios (height / width), same per-feature-map convention.
_C.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
# Angles in degrees, for rotated anchors.
_C.MODEL.ANCHOR_GENERATOR.ANGLES = [[-90, 0, 90]]
# Anchor centre offset in units of the feature stride (0.0 or 0.5).
_C.MODEL.ANCHOR_GENERATOR.OFFSET = 0.0

# ---------------------------------------------------------------------------- #
# RPN
# ---------------------------------------------------------------------------- #
_C.MODEL.RPN = CN()
_C.MODEL.RPN.HEAD_NAME = "StandardRPNHead"
_C.MODEL.RPN.IN_FEATURES = ["res4"]
# Anchors beyond the image border by more than this many pixels are ignored (-1: keep all).
_C.MODEL.RPN.BOUNDARY_THRESH = -1
# Matcher: IoU < 0.3 negative, in between ignored, >= 0.7 positive.
_C.MODEL.RPN.IOU_THRESHOLDS = [0.3, 0.7]
_C.MODEL.RPN.IOU_LABELS = [0, -1, 1]
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5
# "smooth_l1", "giou", "diou" or "ciou".
_C.MODEL.RPN.BBOX_REG_LOSS_TYPE = "smooth_l1"
_C.MODEL.RPN.BBOX_REG_LOSS_WEIGHT = 1.0
_C.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
# 0.0 makes smooth L1 an L1 loss.
_C.MODEL.RPN.SMOOTH_L1_BETA = 0.0
_C.MODEL.RPN.LOSS_WEIGHT = 1.0
# Top-k per feature map before NMS, and in total (FPN: per image) after it.
_C.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 12000
_C.MODEL.RPN.PRE_NMS_TOPK_TEST = 6000
_C.MODEL.RPN.POST_NMS_TOPK_TRAIN = 2000
_C.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
_C.MODEL.RPN.NMS_THRESH = 0.7
# Channels of the head's conv layers; -1 means "the input channels".
_C.MODEL.RPN.CONV_DIMS = [-1]

# ---------------------------------------------------------------------------- #
# ROI heads
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"
# Foreground classes (background excluded).
_C.MODEL.ROI_HEADS.NUM_CLASSES = 80
_C.MODEL.ROI_HEADS.IN_FEATURES = ["res4"]
_C.MODEL.ROI_HEADS.IOU_THRESHOLDS = [0.5]
_C.MODEL.ROI_HEADS.IOU_LABELS = [0, 1]
# Sampled RoIs per image for training the heads, and their foreground fraction.
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 512
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25
# Inference: minimum score, per-class NMS threshold.
_C.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
_C.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.5
# Add the ground-truth boxes to the proposals during training.
_C.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = True

# ---------------------------------------------------------------------------- #
# Box head
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_BOX_HEAD = CN()
# "" means no box head of its own (Res5ROIHeads uses res5 as the head).
_C.MODEL.ROI_BOX_HEAD.NAME = ""
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE = "smooth_l1"
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 1.0
# Weights of (dx, dy, dw, dh) in the box-delta encoding.
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_C.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA = 0.0
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 14
# 0: adaptive number of sampling points per bin.
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
# "ROIAlignV2", "ROIAlign", "ROIPool" or "ROIAlignRotated".
_C.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"
_C.MODEL.ROI_BOX_HEAD.NUM_FC = 0
_C.MODEL.ROI_BOX_HEAD.FC_DIM = 1024
_C.MODEL.ROI_BOX_HEAD.NUM_CONV = 0
_C.MODEL.ROI_BOX_HEAD.CONV_DIM = 256
_C.MODEL.ROI_BOX_HEAD.NORM = ""
# One box regressor for all classes instead of one per class.
_C.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False
# Cascade heads: train later stages on boxes predicted by earlier ones.
_C.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = False
# Sigmoid cross-entropy and the federated loss (LVIS) instead of softmax.
_C.MODEL.ROI_BOX_HEAD.USE_FED_LOSS = False
_C.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE = False
_C.MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER = 0.5
_C.MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES = 50

# ---------------------------------------------------------------------------- #
# Cascade box heads
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_BOX_CASCADE_HEAD = CN()
# One entry per stage; the first stage uses ROI_BOX_HEAD's weights and ROI_HEADS' IoU.
_C.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = (
    (10.0, 10.0, 5.0, 5.0),
    (20.0, 20.0, 10.0, 10.0),
    (30.0, 30.0, 15.0, 15.0),
)
_C.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = (0.5, 0.6, 0.7)

# ---------------------------------------------------------------------------- #
# Mask head
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_MASK_HEAD = CN()
_C.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
_C.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_MASK_HEAD.NUM_CONV = 0
_C.MODEL.ROI_MASK_HEAD.CONV_DIM = 256
_C.MODEL.ROI_MASK_HEAD.NORM = ""
_C.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = False
_C.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIAlignV2"

# ---------------------------------------------------------------------------- #
# Keypoint head
# ---------------------------------------------------------------------------- #
_C.MODEL.ROI_KEYPOINT_HEAD = CN()
_C.MODEL.ROI_KEYPOINT_HEAD.NAME = "KRCNNConvDeconvUpsampleHead"
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = tuple(512 for _ in range(8))
_C.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 17  # COCO person keypoints
# Images with fewer visible keypoints than this are skipped in training.
_C.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE = 1
# Normalize the loss by the visible keypoints of the batch (True) or by a constant.
_C.MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS = True
_C.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT = 1.0
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE = "ROIAlignV2"

# ---------------------------------------------------------------------------- #
# Semantic segmentation head
# ---------------------------------------------------------------------------- #
_C.MODEL.SEM_SEG_HEAD = CN()
_C.MODEL.SEM_SEG_HEAD.NAME = "SemSegFPNHead"
_C.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p2", "p3", "p4", "p5"]
# Pixels labelled with this value are ignored by the loss.
_C.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
# Stuff classes (+1 "things" class in panoptic FPN).
_C.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 54
_C.MODEL.SEM_SEG_HEAD.CONVS_DIM = 128
# Output stride of the head.
_C.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 4
_C.MODEL.SEM_SEG_HEAD.NORM = "GN"
_C.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 1.0

# ---------------------------------------------------------------------------- #
# Panoptic FPN
# ---------------------------------------------------------------------------- #
_C.MODEL.PANOPTIC_FPN = CN()
_C.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT = 1.0
# Combining instance and semantic outputs into a panoptic result.
_C.MODEL.PANOPTIC_FPN.COMBINE = CN({"ENABLED": True})
_C.MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH = 0.5
_C.MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT = 4096
_C.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = 0.5

# ---------------------------------------------------------------------------- #
# RetinaNet
# ---------------------------------------------------------------------------- #
_C.MODEL.RETINANET = CN()
_C.MODEL.RETINANET.NUM_CLASSES = 80
_C.MODEL.RETINANET.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
# Convs in each of the class and box subnets.
_C.MODEL.RETINANET.NUM_CONVS = 4
_C.MODEL.RETINANET.IOU_THRESHOLDS = [0.4, 0.5]
_C.MODEL.RETINANET.IOU_LABELS = [0, -1, 1]
# Initial foreground probability of the classifier (bias init).
_C.MODEL.RETINANET.PRIOR_PROB = 0.01
_C.MODEL.RETINANET.SCORE_THRESH_TEST = 0.05
# Top-k candidates per feature level before NMS.
_C.MODEL.RETINANET.TOPK_CANDIDATES_TEST = 1000
_C.MODEL.RETINANET.NMS_THRESH_TEST = 0.5
_C.MODEL.RETINANET.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
_C.MODEL.RETINANET.FOCAL_LOSS_GAMMA = 2.0
_C.MODEL.RETINANET.FOCAL_LOSS_ALPHA = 0.25
_C.MODEL.RETINANET.SMOOTH_L1_LOSS_BETA = 0.1
_C.MODEL.RETINANET.BBOX_REG_LOSS_TYPE = "smooth_l1"
# "" (none), "BN", "GN", "SyncBN" in the subnets' convs.
_C.MODEL.RETINANET.NORM = ""

# ---------------------------------------------------------------------------- #
# ResNet
# ---------------------------------------------------------------------------- #
_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.DEPTH = 50
_C.MODEL.RESNETS.OUT_FEATURES = ["res4"]
# 1 = ResNet, > 1 = ResNeXt.
_C.MODEL.RESNETS.NUM_GROUPS = 1
# "FrozenBN", "BN", "GN", "SyncBN", ...
_C.MODEL.RESNETS.NORM = "FrozenBN"
# Bottleneck width of the first stage per group.
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
# Stride 2 in the 1x1 conv of a bottleneck (MSRA style) instead of the 3x3 (torchvision).
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
# 1 or 2: dilation in res5 (2 keeps the stride at 16).
_C.MODEL.RESNETS.RES5_DILATION = 1
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
# Deformable convolution per stage (res2..res5).
_C.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, False, False, False]
_C.MODEL.RESNETS.DEFORM_MODULATED = False
_C.MODEL.RESNETS.DEFORM_NUM_GROUPS = 1

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CN()
# "WarmupMultiStepLR", "WarmupCosineLR" or "WarmupStepWithFixedGammaLR".
_C.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.BASE_LR = 0.001
# Final LR of the cosine schedule.
_C.SOLVER.BASE_LR_END = 0.0
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 0.0001
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0
_C.SOLVER.GAMMA = 0.1
# Iterations at which the LR is multiplied by GAMMA.
_C.SOLVER.STEPS = (30000,)
# WarmupStepWithFixedGammaLR: number of decays and whether intervals rescale.
_C.SOLVER.NUM_DECAYS = 3
_C.SOLVER.WARMUP_FACTOR = 1.0 / 1000
_C.SOLVER.WARMUP_ITERS = 1000
_C.SOLVER.WARMUP_METHOD = "linear"
_C.SOLVER.RESCALE_INTERVAL = False
_C.SOLVER.CHECKPOINT_PERIOD = 5000
# Images per batch over all GPUs.
_C.SOLVER.IMS_PER_BATCH = 16
# When > 0, scale LR, iterations and batch size to the actual world size.
_C.SOLVER.REFERENCE_WORLD_SIZE = 0
_C.SOLVER.BIAS_LR_FACTOR = 1.0
# None: biases use WEIGHT_DECAY.
_C.SOLVER.WEIGHT_DECAY_BIAS = None

_C.SOLVER.CLIP_GRADIENTS = CN({"ENABLED": False})
# "value" (clip each element) or "norm" (clip the norm of each parameter's gradient).
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
# The p of the p-norm for "norm" clipping (inf allowed).
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

# Automatic mixed precision in training.
_C.SOLVER.AMP = CN({"ENABLED": False})

# ---------------------------------------------------------------------------- #
# Test
# ---------------------------------------------------------------------------- #
_C.TEST = CN()
# Metrics to verify after evaluation: [[task, metric, value, tolerance], ...].
_C.TEST.EXPECTED_RESULTS = []
# Evaluate every this many iterations during training (0: only at the end).
_C.TEST.EVAL_PERIOD = 0
# Per-keypoint OKS sigmas for keypoint AP; empty: the COCO defaults.
_C.TEST.KEYPOINT_OKS_SIGMAS = []
_C.TEST.DETECTIONS_PER_IMAGE = 100

_C.TEST.AUG = CN({"ENABLED": False})
_C.TEST.AUG.MIN_SIZES = (400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
_C.TEST.AUG.MAX_SIZE = 4000
_C.TEST.AUG.FLIP = True

_C.TEST.PRECISE_BN = CN({"ENABLED": False})
_C.TEST.PRECISE_BN.NUM_ITER = 200

# ---------------------------------------------------------------------------- #
# Misc
# ---------------------------------------------------------------------------- #
_C.OUTPUT_DIR = "./output"
# Negative: a different random seed in every run.
_C.SEED = -1
# cudnn.benchmark: faster for fixed input sizes, slower when sizes vary.
_C.CUDNN_BENCHMARK = False
# torch.backends float32 matmul/conv precision ("", "highest", "high", "medium").
_C.FLOAT32_PRECISION = ""
# Save training visualizations every this many iterations (0: never).
_C.VIS_PERIOD = 0

# A place for global, temporary switches; avoid using it.
_C.GLOBAL = CN()
_C.GLOBAL.HACK = 1.0
