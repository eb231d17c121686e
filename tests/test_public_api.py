"""Upstream Detectron2's public surface, as a test: every public name a module of
upstream has (from /work/shared/API.md and upstream's own modules) must exist here, and
the main entry points take upstream's parameters, in upstream's order, with upstream's
defaults, so code written for upstream runs unchanged.

The names of modules that other branches add (export, tracking, projects,
modeling.mmdet_wrapper, utils.testing, utils.torch_version_utils, checkpoint.catalog,
the ADE20K / Cityscapes-panoptic datasets and the model-zoo LazyConfigs) are listed here
too, unconditionally: those entries fail until the branches that add them are merged.
"""
import importlib
import inspect
import math
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

# Modules both projects have: module -> upstream's public names in it.
UPSTREAM_NAMES = {
    "detectron2.checkpoint": "Checkpointer PeriodicCheckpointer DetectionCheckpointer",
    "detectron2.checkpoint.c2_model_loading": "convert_basic_c2_names convert_c2_detectron_names "
        "align_and_update_state_dicts",
    "detectron2.checkpoint.detection_checkpoint": "DetectionCheckpointer",
    "detectron2.config": "CfgNode get_cfg global_cfg set_global_cfg downgrade_config upgrade_config "
        "configurable instantiate LazyCall LazyConfig",
    "detectron2.config.compat": "upgrade_config downgrade_config guess_version ConverterV1 ConverterV2",
    "detectron2.config.config": "CfgNode get_cfg global_cfg set_global_cfg configurable",
    "detectron2.config.instantiate": "dump_dataclass instantiate",
    "detectron2.config.lazy": "LazyCall LazyConfig",
    "detectron2.data": "transforms datasets samplers build_batch_data_loader build_detection_test_loader "
        "build_detection_train_loader get_detection_dataset_dicts load_proposals_into_dataset "
        "print_instances_class_histogram DatasetCatalog MetadataCatalog Metadata DatasetFromList MapDataset "
        "ToIterableDataset DatasetMapper",
    "detectron2.data.benchmark": "DataLoaderBenchmark",
    "detectron2.data.build": "build_batch_data_loader build_detection_test_loader build_detection_train_loader "
        "get_detection_dataset_dicts load_proposals_into_dataset print_instances_class_histogram "
        "trivial_batch_collator worker_init_reset_seed filter_images_with_only_crowd_annotations "
        "filter_images_with_few_keypoints",
    "detectron2.data.catalog": "DatasetCatalog MetadataCatalog Metadata",
    "detectron2.data.common": "DatasetFromList MapDataset ToIterableDataset AspectRatioGroupedDataset "
        "NumpySerializedList set_default_dataset_from_list_serialize_method",
    "detectron2.data.dataset_mapper": "DatasetMapper",
    "detectron2.data.datasets": "load_coco_json load_sem_seg register_coco_instances convert_to_coco_json "
        "register_coco_panoptic register_coco_panoptic_separated load_lvis_json register_lvis_instances "
        "get_lvis_instances_meta load_voc_instances register_pascal_voc",
    "detectron2.data.datasets.builtin": "register_all_coco register_all_lvis register_all_cityscapes "
        "register_all_pascal_voc",
    "detectron2.data.datasets.builtin_meta": "COCO_CATEGORIES _get_builtin_metadata COCO_PERSON_KEYPOINT_NAMES "
        "COCO_PERSON_KEYPOINT_FLIP_MAP KEYPOINT_CONNECTION_RULES",
    "detectron2.data.datasets.cityscapes": "load_cityscapes_instances load_cityscapes_semantic",
    "detectron2.data.datasets.coco": "load_coco_json load_sem_seg convert_to_coco_dict convert_to_coco_json "
        "register_coco_instances",
    "detectron2.data.datasets.coco_panoptic": "register_coco_panoptic register_coco_panoptic_separated "
        "load_coco_panoptic_json merge_to_panoptic",
    "detectron2.data.datasets.lvis": "load_lvis_json register_lvis_instances get_lvis_instances_meta",
    "detectron2.data.datasets.pascal_voc": "load_voc_instances register_pascal_voc CLASS_NAMES",
    "detectron2.data.detection_utils": "SizeMismatchError convert_image_to_rgb check_image_size "
        "transform_proposals annotations_to_instances annotations_to_instances_rotated filter_empty_instances "
        "create_keypoint_hflip_indices gen_crop_transform_with_instance check_metadata_consistency "
        "build_augmentation build_transform_gen read_image transform_instance_annotations "
        "transform_keypoint_annotations convert_PIL_to_numpy get_fed_loss_cls_weights",
    "detectron2.data.samplers": "TrainingSampler InferenceSampler RepeatFactorTrainingSampler "
        "RandomSubsetTrainingSampler GroupedBatchSampler",
    "detectron2.data.samplers.distributed_sampler": "TrainingSampler RandomSubsetTrainingSampler "
        "RepeatFactorTrainingSampler InferenceSampler",
    "detectron2.data.samplers.grouped_batch_sampler": "GroupedBatchSampler",
    "detectron2.data.transforms": "Transform TransformList NoOpTransform HFlipTransform VFlipTransform "
        "CropTransform BlendTransform PadTransform ScaleTransform GridSampleTransform ExtentTransform "
        "ResizeTransform RotationTransform ColorTransform PILColorTransform AugInput StandardAugInput "
        "Augmentation AugmentationList apply_augmentations apply_transform_gens TransformGen FixedSizeCrop "
        "MinIoURandomCrop RandomApply RandomBrightness RandomContrast RandomCrop "
        "RandomCrop_CategoryAreaConstraint RandomExtent RandomFlip RandomLighting RandomResize RandomRotation "
        "RandomSaturation Resize ResizeScale ResizeShortestEdge",
    "detectron2.data.transforms.augmentation": "Augmentation AugmentationList AugInput TransformGen "
        "apply_transform_gens StandardAugInput apply_augmentations",
    "detectron2.data.transforms.augmentation_impl": "FixedSizeCrop RandomApply RandomBrightness RandomContrast "
        "RandomCrop RandomExtent RandomFlip RandomSaturation RandomLighting RandomRotation Resize ResizeScale "
        "ResizeShortestEdge RandomCrop_CategoryAreaConstraint RandomResize MinIoURandomCrop",
    "detectron2.data.transforms.transform": "ExtentTransform ResizeTransform RotationTransform ColorTransform "
        "PILColorTransform HFlip_rotated_box Resize_rotated_box",
    "detectron2.engine": "launch HookBase TrainerBase SimpleTrainer AMPTrainer DefaultPredictor DefaultTrainer "
        "create_ddp_model default_argument_parser default_setup default_writers hooks",
    "detectron2.engine.defaults": "create_ddp_model default_argument_parser default_setup default_writers "
        "DefaultPredictor DefaultTrainer",
    "detectron2.engine.hooks": "CallbackHook IterationTimer PeriodicWriter PeriodicCheckpointer "
        "BestCheckpointer LRScheduler AutogradProfiler EvalHook PreciseBN TorchProfiler TorchMemoryStats",
    "detectron2.engine.launch": "DEFAULT_TIMEOUT launch",
    "detectron2.engine.train_loop": "HookBase TrainerBase SimpleTrainer AMPTrainer",
    "detectron2.evaluation": "COCOEvaluator RotatedCOCOEvaluator LVISEvaluator COCOPanopticEvaluator "
        "PascalVOCDetectionEvaluator SemSegEvaluator CityscapesInstanceEvaluator CityscapesSemSegEvaluator "
        "DatasetEvaluator DatasetEvaluators inference_context inference_on_dataset print_csv_format "
        "verify_results",
    "detectron2.evaluation.cityscapes_evaluation": "CityscapesEvaluator CityscapesInstanceEvaluator "
        "CityscapesSemSegEvaluator",
    "detectron2.evaluation.coco_evaluation": "COCOEvaluator instances_to_coco_json COCOevalMaxDets",
    "detectron2.evaluation.evaluator": "DatasetEvaluator DatasetEvaluators inference_context "
        "inference_on_dataset",
    "detectron2.evaluation.fast_eval_api": "COCOeval_opt",
    "detectron2.evaluation.lvis_evaluation": "LVISEvaluator",
    "detectron2.evaluation.panoptic_evaluation": "COCOPanopticEvaluator",
    "detectron2.evaluation.pascal_voc_evaluation": "PascalVOCDetectionEvaluator voc_eval voc_ap parse_rec",
    "detectron2.evaluation.rotated_coco_evaluation": "RotatedCOCOEvaluator RotatedCOCOeval",
    "detectron2.evaluation.sem_seg_evaluation": "SemSegEvaluator load_image_into_numpy_array",
    "detectron2.evaluation.testing": "print_csv_format verify_results flatten_results_dict",
    "detectron2.layers": "FrozenBatchNorm2d get_norm NaiveSyncBatchNorm CycleBatchNormList DeformConv "
        "ModulatedDeformConv paste_masks_in_image batched_nms batched_nms_rotated nms nms_rotated ROIAlign "
        "roi_align ROIAlignRotated roi_align_rotated ShapeSpec BatchNorm2d Conv2d ConvTranspose2d cat "
        "interpolate Linear nonzero_tuple cross_entropy empty_input_loss_func_wrapper shapes_to_tensor "
        "move_device_like CNNBlockBase DepthwiseSeparableConv2d ASPP ciou_loss diou_loss",
    "detectron2.layers.aspp": "ASPP",
    "detectron2.layers.batch_norm": "FrozenBatchNorm2d get_norm NaiveSyncBatchNorm CycleBatchNormList LayerNorm "
        "AllReduce",
    "detectron2.layers.blocks": "CNNBlockBase DepthwiseSeparableConv2d",
    "detectron2.layers.deform_conv": "DeformConv ModulatedDeformConv deform_conv modulated_deform_conv",
    "detectron2.layers.losses": "diou_loss ciou_loss",
    "detectron2.layers.mask_ops": "paste_masks_in_image paste_mask_in_image_old pad_masks scale_boxes "
        "BYTES_PER_FLOAT GPU_MEM_LIMIT",
    "detectron2.layers.nms": "batched_nms nms_rotated batched_nms_rotated nms",
    "detectron2.layers.roi_align": "ROIAlign roi_align",
    "detectron2.layers.roi_align_rotated": "ROIAlignRotated roi_align_rotated",
    "detectron2.layers.rotated_boxes": "pairwise_iou_rotated",
    "detectron2.layers.shape_spec": "ShapeSpec",
    "detectron2.layers.wrappers": "shapes_to_tensor check_if_dynamo_compiling disable_torch_compiler cat "
        "empty_input_loss_func_wrapper cross_entropy Conv2d ConvTranspose2d BatchNorm2d interpolate Linear "
        "nonzero_tuple move_device_like",
    "detectron2.model_zoo": "get get_config get_config_file get_checkpoint_url",
    "detectron2.model_zoo.model_zoo": "get_checkpoint_url get_config_file get_config get",
    "detectron2.modeling": "ANCHOR_GENERATOR_REGISTRY build_anchor_generator BACKBONE_REGISTRY FPN Backbone "
        "MViT ResNet ResNetBlockBase SimpleFeaturePyramid SwinTransformer ViT build_backbone "
        "build_resnet_backbone get_vit_lr_decay_rate make_stage FCOS META_ARCH_REGISTRY SEM_SEG_HEADS_REGISTRY "
        "GeneralizedRCNN PanopticFPN ProposalNetwork RetinaNet SemanticSegmentor build_model build_sem_seg_head "
        "detector_postprocess PROPOSAL_GENERATOR_REGISTRY RPN_HEAD_REGISTRY build_proposal_generator "
        "build_rpn_head ROI_BOX_HEAD_REGISTRY ROI_HEADS_REGISTRY ROI_KEYPOINT_HEAD_REGISTRY "
        "ROI_MASK_HEAD_REGISTRY BaseKeypointRCNNHead BaseMaskRCNNHead FastRCNNOutputLayers ROIHeads "
        "StandardROIHeads build_box_head build_keypoint_head build_mask_head build_roi_heads DatasetMapperTTA "
        "GeneralizedRCNNWithTTA",
    "detectron2.modeling.anchor_generator": "ANCHOR_GENERATOR_REGISTRY BufferList DefaultAnchorGenerator "
        "RotatedAnchorGenerator build_anchor_generator",
    "detectron2.modeling.backbone": "build_backbone BACKBONE_REGISTRY Backbone FPN RegNet BasicStem ResNet "
        "ResNetBlockBase build_resnet_backbone make_stage BottleneckBlock ViT SimpleFeaturePyramid "
        "get_vit_lr_decay_rate MViT SwinTransformer",
    "detectron2.modeling.backbone.backbone": "Backbone",
    "detectron2.modeling.backbone.build": "build_backbone BACKBONE_REGISTRY",
    "detectron2.modeling.backbone.fpn": "FPN build_resnet_fpn_backbone build_retinanet_resnet_fpn_backbone "
        "LastLevelMaxPool LastLevelP6P7",
    "detectron2.modeling.backbone.mvit": "MViT MultiScaleAttention MultiScaleBlock",
    "detectron2.modeling.backbone.regnet": "AnyNet RegNet ResStem SimpleStem VanillaBlock ResBasicBlock "
        "ResBottleneckBlock SE AnyStage BottleneckTransform BasicTransform adjust_block_compatibility "
        "generate_regnet_parameters",
    "detectron2.modeling.backbone.resnet": "ResNetBlockBase BasicBlock BottleneckBlock DeformBottleneckBlock "
        "BasicStem ResNet make_stage build_resnet_backbone",
    "detectron2.modeling.backbone.swin": "SwinTransformer WindowAttention SwinTransformerBlock PatchMerging "
        "BasicLayer PatchEmbed",
    "detectron2.modeling.backbone.utils": "window_partition window_unpartition add_decomposed_rel_pos "
        "get_abs_pos PatchEmbed get_rel_pos",
    "detectron2.modeling.backbone.vit": "ViT SimpleFeaturePyramid get_vit_lr_decay_rate Attention "
        "ResBottleneckBlock Block",
    "detectron2.modeling.box_regression": "Box2BoxTransform Box2BoxTransformRotated Box2BoxTransformLinear",
    "detectron2.modeling.matcher": "Matcher",
    "detectron2.modeling.meta_arch": "build_model META_ARCH_REGISTRY PanopticFPN GeneralizedRCNN "
        "ProposalNetwork DenseDetector RetinaNet FCOS SEM_SEG_HEADS_REGISTRY SemanticSegmentor "
        "build_sem_seg_head",
    "detectron2.modeling.meta_arch.build": "build_model META_ARCH_REGISTRY",
    "detectron2.modeling.meta_arch.dense_detector": "DenseDetector permute_to_N_HWA_K",
    "detectron2.modeling.meta_arch.fcos": "FCOS FCOSHead",
    "detectron2.modeling.meta_arch.panoptic_fpn": "PanopticFPN combine_semantic_and_instance_outputs",
    "detectron2.modeling.meta_arch.rcnn": "GeneralizedRCNN ProposalNetwork",
    "detectron2.modeling.meta_arch.retinanet": "RetinaNet RetinaNetHead",
    "detectron2.modeling.meta_arch.semantic_seg": "SemanticSegmentor SEM_SEG_HEADS_REGISTRY SemSegFPNHead "
        "build_sem_seg_head",
    "detectron2.modeling.poolers": "ROIPooler assign_boxes_to_levels convert_boxes_to_pooler_format",
    "detectron2.modeling.postprocessing": "detector_postprocess sem_seg_postprocess",
    "detectron2.modeling.proposal_generator": "PROPOSAL_GENERATOR_REGISTRY build_proposal_generator "
        "RPN_HEAD_REGISTRY build_rpn_head RPN StandardRPNHead",
    "detectron2.modeling.proposal_generator.build": "PROPOSAL_GENERATOR_REGISTRY build_proposal_generator",
    "detectron2.modeling.proposal_generator.proposal_utils": "find_top_rpn_proposals "
        "add_ground_truth_to_proposals add_ground_truth_to_proposals_single_image",
    "detectron2.modeling.proposal_generator.rpn": "RPN_HEAD_REGISTRY build_rpn_head StandardRPNHead RPN",
    "detectron2.modeling.proposal_generator.rrpn": "RRPN find_top_rrpn_proposals",
    "detectron2.modeling.roi_heads": "ROI_BOX_HEAD_REGISTRY build_box_head FastRCNNConvFCHead "
        "ROI_KEYPOINT_HEAD_REGISTRY build_keypoint_head BaseKeypointRCNNHead KRCNNConvDeconvUpsampleHead "
        "ROI_MASK_HEAD_REGISTRY build_mask_head BaseMaskRCNNHead MaskRCNNConvUpsampleHead ROI_HEADS_REGISTRY "
        "ROIHeads Res5ROIHeads StandardROIHeads build_roi_heads select_foreground_proposals CascadeROIHeads "
        "RROIHeads FastRCNNOutputLayers",
    "detectron2.modeling.roi_heads.box_head": "FastRCNNConvFCHead build_box_head ROI_BOX_HEAD_REGISTRY",
    "detectron2.modeling.roi_heads.cascade_rcnn": "CascadeROIHeads",
    "detectron2.modeling.roi_heads.fast_rcnn": "fast_rcnn_inference fast_rcnn_inference_single_image "
        "FastRCNNOutputLayers",
    "detectron2.modeling.roi_heads.keypoint_head": "ROI_KEYPOINT_HEAD_REGISTRY build_keypoint_head "
        "BaseKeypointRCNNHead KRCNNConvDeconvUpsampleHead keypoint_rcnn_loss keypoint_rcnn_inference",
    "detectron2.modeling.roi_heads.mask_head": "BaseMaskRCNNHead MaskRCNNConvUpsampleHead build_mask_head "
        "ROI_MASK_HEAD_REGISTRY mask_rcnn_loss mask_rcnn_inference",
    "detectron2.modeling.roi_heads.roi_heads": "ROI_HEADS_REGISTRY ROIHeads Res5ROIHeads StandardROIHeads "
        "build_roi_heads select_foreground_proposals select_proposals_with_visible_keypoints",
    "detectron2.modeling.roi_heads.rotated_fast_rcnn": "RROIHeads fast_rcnn_inference_rotated "
        "fast_rcnn_inference_single_image_rotated RotatedFastRCNNOutputLayers",
    "detectron2.modeling.sampling": "subsample_labels",
    "detectron2.modeling.test_time_augmentation": "DatasetMapperTTA GeneralizedRCNNWithTTA",
    "detectron2.solver": "build_lr_scheduler build_optimizer get_default_optimizer_params LRMultiplier "
        "LRScheduler WarmupParamScheduler",
    "detectron2.solver.build": "build_lr_scheduler build_optimizer get_default_optimizer_params "
        "GradientClipType maybe_add_gradient_clipping reduce_param_groups",
    "detectron2.solver.lr_scheduler": "LRMultiplier LRScheduler WarmupParamScheduler WarmupMultiStepLR "
        "WarmupCosineLR",
    "detectron2.structures": "Boxes BoxMode pairwise_iou pairwise_ioa pairwise_point_box_distance ImageList "
        "Instances Keypoints heatmaps_to_keypoints BitMasks PolygonMasks polygons_to_bitmask ROIMasks "
        "RotatedBoxes pairwise_iou_rotated",
    "detectron2.structures.boxes": "Boxes BoxMode pairwise_iou pairwise_ioa pairwise_intersection "
        "pairwise_point_box_distance matched_pairwise_iou",
    "detectron2.structures.image_list": "ImageList",
    "detectron2.structures.instances": "Instances",
    "detectron2.structures.keypoints": "Keypoints heatmaps_to_keypoints",
    "detectron2.structures.masks": "BitMasks PolygonMasks ROIMasks polygons_to_bitmask polygon_area "
        "rasterize_polygons_within_box",
    "detectron2.structures.rotated_boxes": "RotatedBoxes pairwise_iou",
    "detectron2.utils.analysis": "activation_count_operators flop_count_operators parameter_count_table "
        "parameter_count FlopCountAnalysis find_unused_parameters",
    "detectron2.utils.collect_env": "collect_env_info",
    "detectron2.utils.colormap": "colormap random_color random_colors",
    "detectron2.utils.comm": "get_world_size get_rank create_local_process_group get_local_process_group "
        "get_local_rank get_local_size is_main_process synchronize all_gather gather shared_random_seed "
        "reduce_dict",
    "detectron2.utils.develop": "create_dummy_class create_dummy_func",
    "detectron2.utils.env": "seed_all_rng setup_environment setup_custom_environment TORCH_VERSION "
        "fixup_module_metadata",
    "detectron2.utils.events": "get_event_storage has_event_storage EventWriter JSONWriter TensorboardXWriter "
        "CommonMetricPrinter EventStorage",
    "detectron2.utils.file_io": "PathManager PathHandler Detectron2Handler",
    "detectron2.utils.logger": "setup_logger log_first_n log_every_n log_every_n_seconds create_small_table",
    "detectron2.utils.memory": "retry_if_cuda_oom",
    "detectron2.utils.registry": "Registry locate",
    "detectron2.utils.serialize": "PicklableWrapper",
    "detectron2.utils.tracing": "assert_fx_safe is_fx_tracing",
    "detectron2.utils.video_visualizer": "VideoVisualizer",
    "detectron2.utils.visualizer": "ColorMode VisImage Visualizer GenericMask",
}

# Modules (or names) other branches add; checked as strictly as the others.
ADDED_BY_OTHER_BRANCHES = {
    "detectron2.export": "TracingAdapter dump_torchscript_IR scripting_with_instances",
    "detectron2.export.flatten": "TracingAdapter flatten_to_tuple",
    "detectron2.export.torchscript": "dump_torchscript_IR scripting_with_instances",
    "detectron2.tracking": "BaseTracker build_tracker_head TRACKER_HEADS_REGISTRY BBoxIOUTracker "
        "BaseHungarianTracker IOUWeightedHungarianBBoxIOUTracker VanillaHungarianBBoxIOUTracker "
        "create_prediction_pairs",
    "detectron2.projects.point_rend": "add_pointrend_config PointRendMaskHead ImplicitPointRendMaskHead "
        "PointRendSemSegHead ColorAugSSDTransform",
    "detectron2.projects.deeplab": "add_deeplab_config build_lr_scheduler DeepLabV3Head DeepLabV3PlusHead "
        "build_resnet_deeplab_backbone",
    "detectron2.projects.panoptic_deeplab": "add_panoptic_deeplab_config PanopticDeeplabDatasetMapper "
        "PanopticDeepLab INS_EMBED_BRANCHES_REGISTRY build_ins_embed_branch PanopticDeepLabSemSegHead "
        "PanopticDeepLabInsEmbedHead",
    "detectron2.modeling": "MMDetBackbone MMDetDetector",
    "detectron2.modeling.mmdet_wrapper": "MMDetBackbone MMDetDetector",
    "detectron2.utils.testing": "random_boxes get_model_no_weights get_sample_coco_image "
        "assert_instances_allclose convert_scripted_instances reload_script_model reload_lazy_config",
    "detectron2.utils.torch_version_utils": "min_torch_version",
    "detectron2.checkpoint.catalog": "ModelCatalog ModelCatalogHandler",
    "detectron2.data.datasets.cityscapes_panoptic": "register_all_cityscapes_panoptic load_cityscapes_panoptic",
    "detectron2.data.datasets.builtin": "register_all_ade20k register_all_cityscapes_panoptic",
    "detectron2.data.datasets.builtin_meta": "ADE20K_SEM_SEG_CATEGORIES",
}

# Model-zoo LazyConfigs other branches add.
ADDED_ZOO_CONFIGS = [
    "common/models/mask_rcnn_vitdet.py",
    "Misc/mmdet_mask_rcnn_R_50_FPN_1x.py",
    "Misc/torchvision_imagenet_R_50.py",
]


def _missing(module_name: str, names: str) -> List[str]:
    module = importlib.import_module(module_name)
    return [n for n in names.split() if not hasattr(module, n)]


@pytest.mark.parametrize("module_name", sorted(UPSTREAM_NAMES))
def test_upstream_names_exist(module_name):
    assert _missing(module_name, UPSTREAM_NAMES[module_name]) == []


@pytest.mark.parametrize("module_name", sorted(ADDED_BY_OTHER_BRANCHES))
def test_names_of_modules_added_by_other_branches(module_name):
    assert _missing(module_name, ADDED_BY_OTHER_BRANCHES[module_name]) == []


@pytest.mark.parametrize("config", ADDED_ZOO_CONFIGS)
def test_model_zoo_lazy_configs_added_by_other_branches(config):
    from detectron2 import model_zoo

    assert model_zoo.get_config_file(config).endswith(config)


def test_api_md_names_are_all_listed():
    # Every name API.md lists for a package appears in the table above, so the table
    # does not silently drop part of the documented surface.
    documented = {
        "detectron2.structures": "Boxes BoxMode pairwise_iou pairwise_ioa pairwise_point_box_distance ImageList "
        "Instances Keypoints heatmaps_to_keypoints BitMasks PolygonMasks polygons_to_bitmask ROIMasks "
        "RotatedBoxes pairwise_iou_rotated",
        "detectron2.solver": "build_lr_scheduler build_optimizer get_default_optimizer_params LRMultiplier "
        "LRScheduler WarmupParamScheduler",
        "detectron2.model_zoo": "get get_config get_config_file get_checkpoint_url",
        "detectron2.engine": "launch HookBase TrainerBase SimpleTrainer AMPTrainer DefaultPredictor "
        "DefaultTrainer create_ddp_model default_argument_parser default_setup default_writers",
    }
    for module_name, names in documented.items():
        assert set(names.split()) <= set(UPSTREAM_NAMES[module_name].split()), module_name


# ------------------------------------------------------------------ signatures
REQUIRED = inspect.Parameter.empty


def _defaults() -> Dict[str, Any]:
    """Default values that are objects of the package, resolved at test time."""
    from detectron2.engine.launch import DEFAULT_TIMEOUT
    from detectron2.evaluation.sem_seg_evaluation import load_image_into_numpy_array
    from detectron2.utils.visualizer import ColorMode

    return {
        "ColorMode.IMAGE": ColorMode.IMAGE,
        "DEFAULT_TIMEOUT": DEFAULT_TIMEOUT,
        "torch.float16": torch.float16,
        "Image.BILINEAR": Image.BILINEAR,
        "load_image_into_numpy_array": load_image_into_numpy_array,
        "scale_clamp": math.log(1000.0 / 16),
        "maxsize": 2**63 - 1,
        "LayerNorm": torch.nn.LayerNorm,
        "GELU": torch.nn.GELU,
        "CLASS_NAMES": importlib.import_module("detectron2.data.datasets.pascal_voc").CLASS_NAMES,
    }


R = REQUIRED
# callable -> upstream's parameters in order, (name, default); R = no default.
# Ours may add parameters after them (with defaults), or a default to a required one:
# upstream's calls still work.
SIGNATURES: Dict[str, List[Tuple[str, Any]]] = {
    "detectron2.utils.visualizer.Visualizer.__init__": [
        ("self", R), ("img_rgb", R), ("metadata", None), ("scale", 1.0), ("instance_mode", "@ColorMode.IMAGE"),
        ("font_size_scale", 1.0),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_instance_predictions": [
        ("self", R), ("predictions", R), ("jittering", True),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_sem_seg": [
        ("self", R), ("sem_seg", R), ("area_threshold", None), ("alpha", 0.8),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_panoptic_seg": [
        ("self", R), ("panoptic_seg", R), ("segments_info", R), ("area_threshold", None), ("alpha", 0.7),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_dataset_dict": [("self", R), ("dic", R)],
    "detectron2.utils.visualizer.Visualizer.overlay_instances": [
        ("self", R), ("boxes", None), ("labels", None), ("masks", None), ("keypoints", None),
        ("assigned_colors", None), ("alpha", 0.5),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_text": [
        ("self", R), ("text", R), ("position", R), ("font_size", None), ("color", 'g'),
        ("horizontal_alignment", 'center'), ("rotation", 0),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_box": [
        ("self", R), ("box_coord", R), ("alpha", 0.5), ("edge_color", 'g'), ("line_style", '-'),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_binary_mask": [
        ("self", R), ("binary_mask", R), ("color", None), ("edge_color", None), ("text", None), ("alpha", 0.5),
        ("area_threshold", 10),
    ],
    "detectron2.utils.visualizer.Visualizer.draw_polygon": [
        ("self", R), ("segment", R), ("color", R), ("edge_color", None), ("alpha", 0.5),
    ],
    "detectron2.utils.video_visualizer.VideoVisualizer.__init__": [
        ("self", R), ("metadata", R), ("instance_mode", "@ColorMode.IMAGE"),
    ],
    "detectron2.utils.logger.setup_logger": [
        ("output", None), ("distributed_rank", 0), ("color", True), ("name", 'detectron2'), ("abbrev_name", None),
        ("enable_propagation", False), ("configure_stdout", True),
    ],
    "detectron2.engine.launch.launch": [
        ("main_func", R), ("num_gpus_per_machine", R), ("num_machines", 1), ("machine_rank", 0), ("dist_url", None),
        ("args", ()), ("timeout", "@DEFAULT_TIMEOUT"),
    ],
    "detectron2.engine.train_loop.SimpleTrainer.__init__": [
        ("self", R), ("model", R), ("data_loader", R), ("optimizer", R), ("gather_metric_period", 1),
        ("zero_grad_before_forward", False), ("async_write_metrics", False),
    ],
    "detectron2.engine.train_loop.AMPTrainer.__init__": [
        ("self", R), ("model", R), ("data_loader", R), ("optimizer", R), ("gather_metric_period", 1),
        ("zero_grad_before_forward", False), ("grad_scaler", None), ("precision", "@torch.float16"),
        ("log_grad_scaler", False), ("async_write_metrics", False),
    ],
    "detectron2.engine.defaults.default_writers": [("output_dir", R), ("max_iter", None)],
    "detectron2.engine.defaults.create_ddp_model": [("model", R), ("fp16_compression", False), ("**kwargs", R)],
    "detectron2.engine.defaults.default_argument_parser": [("epilog", None)],
    "detectron2.engine.defaults.default_setup": [("cfg", R), ("args", R)],
    "detectron2.evaluation.evaluator.inference_on_dataset": [
        ("model", R), ("data_loader", R), ("evaluator", R), ("callbacks", None),
    ],
    "detectron2.evaluation.coco_evaluation.COCOEvaluator.__init__": [
        ("self", R), ("dataset_name", R), ("tasks", None), ("distributed", True), ("output_dir", None),
        ("max_dets_per_image", None), ("use_fast_impl", True), ("kpt_oks_sigmas", ()), ("allow_cached_coco", True),
    ],
    "detectron2.evaluation.sem_seg_evaluation.SemSegEvaluator.__init__": [
        ("self", R), ("dataset_name", R), ("distributed", True), ("output_dir", None),
        ("sem_seg_loading_fn", "@load_image_into_numpy_array"), ("num_classes", None), ("ignore_label", None),
    ],
    "detectron2.evaluation.lvis_evaluation.LVISEvaluator.__init__": [
        ("self", R), ("dataset_name", R), ("tasks", None), ("distributed", True), ("output_dir", None),
        ("max_dets_per_image", None),
    ],
    "detectron2.evaluation.panoptic_evaluation.COCOPanopticEvaluator.__init__": [
        ("self", R), ("dataset_name", R), ("output_dir", None),
    ],
    "detectron2.evaluation.pascal_voc_evaluation.PascalVOCDetectionEvaluator.__init__": [
        ("self", R), ("dataset_name", R),
    ],
    "detectron2.data.build.build_detection_test_loader": [
        ("dataset", R), ("mapper", R), ("sampler", None), ("batch_size", 1), ("num_workers", 0),
        ("collate_fn", None),
    ],
    "detectron2.data.build.build_detection_train_loader": [
        ("dataset", R), ("mapper", R), ("sampler", None), ("total_batch_size", R), ("aspect_ratio_grouping", True),
        ("num_workers", 0), ("collate_fn", None), ("**kwargs", R),
    ],
    "detectron2.data.build.get_detection_dataset_dicts": [
        ("names", R), ("filter_empty", True), ("min_keypoints", 0), ("proposal_files", None),
        ("check_consistency", True),
    ],
    "detectron2.data.common.DatasetFromList.__init__": [("self", R), ("lst", R), ("copy", True), ("serialize", True)],
    "detectron2.data.common.MapDataset.__init__": [("self", R), ("dataset", R), ("map_func", R)],
    "detectron2.data.common.ToIterableDataset.__init__": [
        ("self", R), ("dataset", R), ("sampler", R), ("shard_sampler", True), ("shard_chunk_size", 1),
    ],
    "detectron2.data.detection_utils.read_image": [("file_name", R), ("format", None)],
    "detectron2.data.detection_utils.annotations_to_instances": [
        ("annos", R), ("image_size", R), ("mask_format", 'polygon'),
    ],
    "detectron2.data.detection_utils.transform_instance_annotations": [
        ("annotation", R), ("transforms", R), ("image_size", R), ("keypoint_hflip_indices", None),
    ],
    "detectron2.data.detection_utils.filter_empty_instances": [
        ("instances", R), ("by_box", True), ("by_mask", True), ("box_threshold", 1e-05), ("return_mask", False),
    ],
    "detectron2.data.detection_utils.check_image_size": [("dataset_dict", R), ("image", R)],
    "detectron2.data.detection_utils.build_augmentation": [("cfg", R), ("is_train", R)],
    "detectron2.data.detection_utils.gen_crop_transform_with_instance": [
        ("crop_size", R), ("image_size", R), ("instance", R),
    ],
    "detectron2.data.samplers.distributed_sampler.TrainingSampler.__init__": [
        ("self", R), ("size", R), ("shuffle", True), ("seed", None),
    ],
    "detectron2.data.samplers.distributed_sampler.RepeatFactorTrainingSampler.__init__": [
        ("self", R), ("repeat_factors", R), ("shuffle", True), ("seed", None),
    ],
    "detectron2.data.samplers.distributed_sampler.RandomSubsetTrainingSampler.__init__": [
        ("self", R), ("size", R), ("subset_ratio", R), ("shuffle", True), ("seed_shuffle", None),
        ("seed_subset", None),
    ],
    "detectron2.data.datasets.coco.load_coco_json": [
        ("json_file", R), ("image_root", R), ("dataset_name", None), ("extra_annotation_keys", None),
    ],
    "detectron2.data.datasets.coco.register_coco_instances": [
        ("name", R), ("metadata", R), ("json_file", R), ("image_root", R),
    ],
    "detectron2.data.datasets.coco.load_sem_seg": [
        ("gt_root", R), ("image_root", R), ("gt_ext", 'png'), ("image_ext", 'jpg'),
    ],
    "detectron2.data.datasets.coco.convert_to_coco_json": [
        ("dataset_name", R), ("output_file", R), ("allow_cached", True),
    ],
    "detectron2.data.transforms.augmentation_impl.ResizeShortestEdge.__init__": [
        ("self", R), ("short_edge_length", R), ("max_size", "@maxsize"), ("sample_style", 'range'),
        ("interp", "@Image.BILINEAR"),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomFlip.__init__": [
        ("self", R), ("prob", 0.5), ("horizontal", True), ("vertical", False),
    ],
    "detectron2.data.transforms.augmentation_impl.Resize.__init__": [
        ("self", R), ("shape", R), ("interp", "@Image.BILINEAR"),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomCrop.__init__": [
        ("self", R), ("crop_type", R), ("crop_size", R),
    ],
    "detectron2.data.transforms.augmentation_impl.ResizeScale.__init__": [
        ("self", R), ("min_scale", R), ("max_scale", R), ("target_height", R), ("target_width", R),
        ("interp", "@Image.BILINEAR"),
    ],
    "detectron2.data.transforms.augmentation_impl.FixedSizeCrop.__init__": [
        ("self", R), ("crop_size", R), ("pad", True), ("pad_value", 128.0), ("seg_pad_value", 255),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomRotation.__init__": [
        ("self", R), ("angle", R), ("expand", True), ("center", None), ("sample_style", 'range'), ("interp", None),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomExtent.__init__": [
        ("self", R), ("scale_range", R), ("shift_range", R),
    ],
    "detectron2.data.transforms.augmentation_impl.MinIoURandomCrop.__init__": [
        ("self", R), ("min_ious", (0.1, 0.3, 0.5, 0.7, 0.9)), ("min_crop_size", 0.3), ("mode_trials", 1000),
        ("crop_trials", 50),
    ],
    "detectron2.data.transforms.transform.ResizeTransform.__init__": [
        ("self", R), ("h", R), ("w", R), ("new_h", R), ("new_w", R), ("interp", None),
    ],
    "detectron2.data.transforms.transform.RotationTransform.__init__": [
        ("self", R), ("h", R), ("w", R), ("angle", R), ("expand", True), ("center", None), ("interp", None),
    ],
    "detectron2.data.transforms.transform.ExtentTransform.__init__": [
        ("self", R), ("src_rect", R), ("output_size", R), ("interp", "@Image.BILINEAR"), ("fill", 0),
    ],
    "detectron2.structures.image_list.ImageList.from_tensors": [
        ("tensors", R), ("size_divisibility", 0), ("pad_value", 0.0), ("padding_constraints", None),
    ],
    "detectron2.structures.masks.polygons_to_bitmask": [("polygons", R), ("height", R), ("width", R)],
    "detectron2.structures.masks.rasterize_polygons_within_box": [("polygons", R), ("box", R), ("mask_size", R)],
    "detectron2.structures.keypoints.heatmaps_to_keypoints": [("maps", R), ("rois", R)],
    "detectron2.structures.boxes.BoxMode.convert": [("box", R), ("from_mode", R), ("to_mode", R)],
    "detectron2.structures.boxes.pairwise_iou": [("boxes1", R), ("boxes2", R)],
    "detectron2.structures.boxes.pairwise_point_box_distance": [("points", R), ("boxes", R)],
    "detectron2.layers.mask_ops.paste_masks_in_image": [
        ("masks", R), ("boxes", R), ("image_shape", R), ("threshold", 0.5),
    ],
    "detectron2.layers.nms.batched_nms_rotated": [("boxes", R), ("scores", R), ("idxs", R), ("iou_threshold", R)],
    "detectron2.layers.nms.nms_rotated": [("boxes", R), ("scores", R), ("iou_threshold", R)],
    "detectron2.layers.batch_norm.get_norm": [("norm", R), ("out_channels", R)],
    "detectron2.layers.batch_norm.NaiveSyncBatchNorm.__init__": [
        ("self", R), ("*args", R), ("stats_mode", ''), ("**kwargs", R),
    ],
    "detectron2.layers.roi_align.ROIAlign.__init__": [
        ("self", R), ("output_size", R), ("spatial_scale", R), ("sampling_ratio", R), ("aligned", True),
    ],
    "detectron2.layers.roi_align_rotated.ROIAlignRotated.__init__": [
        ("self", R), ("output_size", R), ("spatial_scale", R), ("sampling_ratio", R),
    ],
    "detectron2.layers.wrappers.cross_entropy": [("input", R), ("target", R), ("**kwargs", R)],
    "detectron2.layers.wrappers.shapes_to_tensor": [("x", R), ("device", None)],
    "detectron2.layers.wrappers.move_device_like": [("src", R), ("dst", R)],
    "detectron2.layers.losses.diou_loss": [("boxes1", R), ("boxes2", R), ("reduction", 'none'), ("eps", 1e-07)],
    "detectron2.layers.losses.ciou_loss": [("boxes1", R), ("boxes2", R), ("reduction", 'none'), ("eps", 1e-07)],
    "detectron2.layers.aspp.ASPP.__init__": [
        ("self", R), ("in_channels", R), ("out_channels", R), ("dilations", R), ("norm", R), ("activation", R),
        ("pool_kernel_size", None), ("dropout", 0.0), ("use_depthwise_separable_conv", False),
    ],
    "detectron2.layers.blocks.DepthwiseSeparableConv2d.__init__": [
        ("self", R), ("in_channels", R), ("out_channels", R), ("kernel_size", 3), ("padding", 1), ("dilation", 1),
        ("norm1", None), ("activation1", None), ("norm2", None), ("activation2", None),
    ],
    "detectron2.modeling.postprocessing.detector_postprocess": [
        ("results", R), ("output_height", R), ("output_width", R), ("mask_threshold", 0.5),
    ],
    "detectron2.modeling.postprocessing.sem_seg_postprocess": [
        ("result", R), ("img_size", R), ("output_height", R), ("output_width", R),
    ],
    "detectron2.modeling.matcher.Matcher.__init__": [
        ("self", R), ("thresholds", R), ("labels", R), ("allow_low_quality_matches", False),
    ],
    "detectron2.modeling.sampling.subsample_labels": [
        ("labels", R), ("num_samples", R), ("positive_fraction", R), ("bg_label", R),
    ],
    "detectron2.modeling.box_regression.Box2BoxTransform.__init__": [
        ("self", R), ("weights", R), ("scale_clamp", "@scale_clamp"),
    ],
    "detectron2.modeling.poolers.ROIPooler.__init__": [
        ("self", R), ("output_size", R), ("scales", R), ("sampling_ratio", R), ("pooler_type", R),
        ("canonical_box_size", 224), ("canonical_level", 4),
    ],
    "detectron2.modeling.roi_heads.fast_rcnn.fast_rcnn_inference": [
        ("boxes", R), ("scores", R), ("image_shapes", R), ("score_thresh", R), ("nms_thresh", R),
        ("topk_per_image", R),
    ],
    "detectron2.modeling.roi_heads.roi_heads.select_foreground_proposals": [("proposals", R), ("bg_label", R)],
    "detectron2.modeling.backbone.resnet.ResNet.__init__": [
        ("self", R), ("stem", R), ("stages", R), ("num_classes", None), ("out_features", None), ("freeze_at", 0),
    ],
    "detectron2.modeling.backbone.resnet.BottleneckBlock.__init__": [
        ("self", R), ("in_channels", R), ("out_channels", R), ("bottleneck_channels", R), ("stride", 1),
        ("num_groups", 1), ("norm", 'BN'), ("stride_in_1x1", False), ("dilation", 1),
    ],
    "detectron2.modeling.backbone.fpn.FPN.__init__": [
        ("self", R), ("bottom_up", R), ("in_features", R), ("out_channels", R), ("norm", ''), ("top_block", None),
        ("fuse_type", 'sum'), ("square_pad", 0),
    ],
    "detectron2.modeling.backbone.vit.get_vit_lr_decay_rate": [
        ("name", R), ("lr_decay_rate", 1.0), ("num_layers", 12),
    ],
    "detectron2.modeling.meta_arch.build.build_model": [("cfg", R)],
    "detectron2.checkpoint.detection_checkpoint.DetectionCheckpointer.__init__": [
        ("self", R), ("model", R), ("save_dir", ''), ("save_to_disk", None), ("**checkpointables", R),
    ],
    "detectron2.solver.build.get_default_optimizer_params": [
        ("model", R), ("base_lr", None), ("weight_decay", None), ("weight_decay_norm", None),
        ("bias_lr_factor", 1.0), ("weight_decay_bias", None), ("lr_factor_func", None), ("overrides", None),
    ],
    "detectron2.solver.build.maybe_add_gradient_clipping": [("cfg", R), ("optimizer", R)],
    "detectron2.solver.lr_scheduler.WarmupParamScheduler.__init__": [
        ("self", R), ("scheduler", R), ("warmup_factor", R), ("warmup_length", R), ("warmup_method", 'linear'),
        ("rescale_interval", False),
    ],
    "detectron2.solver.lr_scheduler.LRMultiplier.__init__": [
        ("self", R), ("optimizer", R), ("multiplier", R), ("max_iter", R), ("last_iter", -1),
    ],
    "detectron2.config.lazy.LazyConfig.to_py": [("cfg", R), ("prefix", 'cfg.')],
    "detectron2.config.lazy.LazyConfig.load": [("filename", R), ("keys", None)],
    "detectron2.config.lazy.LazyConfig.save": [("cfg", R), ("filename", R)],
    "detectron2.config.lazy.LazyConfig.apply_overrides": [("cfg", R), ("overrides", R)],
    "detectron2.config.config.configurable": [("init_func", None), ("from_config", None)],
    "detectron2.model_zoo.model_zoo.get": [("config_path", R), ("trained", False), ("device", None)],
    "detectron2.model_zoo.model_zoo.get_config": [("config_path", R), ("trained", False)],
    "detectron2.utils.env.seed_all_rng": [("seed", None)],
    "detectron2.utils.comm.all_gather": [("data", R), ("group", None)],
    "detectron2.utils.comm.gather": [("data", R), ("dst", 0), ("group", None)],
    "detectron2.utils.comm.reduce_dict": [("input_dict", R), ("average", True)],
    "detectron2.utils.events.EventStorage.__init__": [("self", R), ("start_iter", 0)],
    "detectron2.utils.events.JSONWriter.__init__": [("self", R), ("json_file", R), ("window_size", 20)],
    "detectron2.utils.events.CommonMetricPrinter.__init__": [("self", R), ("max_iter", None), ("window_size", 20)],
    "detectron2.utils.events.TensorboardXWriter.__init__": [
        ("self", R), ("log_dir", R), ("window_size", 20), ("**kwargs", R),
    ],
    "detectron2.utils.memory.retry_if_cuda_oom": [("func", R)],
    "detectron2.utils.colormap.colormap": [("rgb", False), ("maximum", 255)],
    "detectron2.utils.colormap.random_color": [("rgb", False), ("maximum", 255)],
    "detectron2.utils.colormap.random_colors": [("N", R), ("rgb", False), ("maximum", 255)],
    "detectron2.structures.instances.Instances.__init__": [("self", R), ("image_size", R), ("**kwargs", R)],
    "detectron2.structures.image_list.ImageList.__init__": [("self", R), ("tensor", R), ("image_sizes", R)],
    "detectron2.structures.keypoints.Keypoints.to_heatmap": [("self", R), ("boxes", R), ("heatmap_size", R)],
    "detectron2.structures.masks.BitMasks.crop_and_resize": [("self", R), ("boxes", R), ("mask_size", R)],
    "detectron2.structures.masks.PolygonMasks.crop_and_resize": [("self", R), ("boxes", R), ("mask_size", R)],
    "detectron2.structures.masks.BitMasks.from_polygon_masks": [("polygon_masks", R), ("height", R), ("width", R)],
    "detectron2.structures.masks.BitMasks.from_roi_masks": [("roi_masks", R), ("height", R), ("width", R)],
    "detectron2.structures.masks.ROIMasks.to_bitmasks": [
        ("self", R), ("boxes", R), ("height", R), ("width", R), ("threshold", 0.5),
    ],
    "detectron2.structures.boxes.Boxes.clip": [("self", R), ("box_size", R)],
    "detectron2.structures.boxes.Boxes.nonempty": [("self", R), ("threshold", 0.0)],
    "detectron2.structures.boxes.Boxes.inside_box": [("self", R), ("box_size", R), ("boundary_threshold", 0)],
    "detectron2.structures.boxes.Boxes.scale": [("self", R), ("scale_x", R), ("scale_y", R)],
    "detectron2.structures.rotated_boxes.RotatedBoxes.clip": [
        ("self", R), ("box_size", R), ("clip_angle_threshold", 1.0),
    ],
    "detectron2.structures.rotated_boxes.RotatedBoxes.nonempty": [("self", R), ("threshold", 0.0)],
    "detectron2.structures.rotated_boxes.RotatedBoxes.inside_box": [
        ("self", R), ("box_size", R), ("boundary_threshold", 0),
    ],
    "detectron2.structures.rotated_boxes.RotatedBoxes.scale": [("self", R), ("scale_x", R), ("scale_y", R)],
    "detectron2.data.dataset_mapper.DatasetMapper.__init__": [
        ("self", R), ("is_train", R), ("augmentations", R), ("image_format", R), ("use_instance_mask", False),
        ("use_keypoint", False), ("instance_mask_format", 'polygon'), ("keypoint_hflip_indices", None),
        ("precomputed_proposal_topk", None), ("recompute_boxes", False),
    ],
    "detectron2.data.catalog._DatasetCatalog.register": [("self", R), ("name", R), ("func", R)],
    "detectron2.engine.defaults.DefaultTrainer.test": [("cfg", R), ("model", R), ("evaluators", None)],
    "detectron2.engine.defaults.DefaultTrainer.resume_or_load": [("self", R), ("resume", True)],
    "detectron2.engine.defaults.DefaultTrainer.build_evaluator": [("cfg", R), ("dataset_name", R)],
    "detectron2.engine.defaults.DefaultPredictor.__init__": [("self", R), ("cfg", R)],
    "detectron2.modeling.meta_arch.rcnn.GeneralizedRCNN.__init__": [
        ("self", R), ("backbone", R), ("proposal_generator", R), ("roi_heads", R), ("pixel_mean", R),
        ("pixel_std", R), ("input_format", None), ("vis_period", 0),
    ],
    "detectron2.modeling.meta_arch.rcnn.GeneralizedRCNN.inference": [
        ("self", R), ("batched_inputs", R), ("detected_instances", None), ("do_postprocess", True),
    ],
    "detectron2.modeling.meta_arch.retinanet.RetinaNet.__init__": [
        ("self", R), ("backbone", R), ("head", R), ("head_in_features", R), ("anchor_generator", R),
        ("box2box_transform", R), ("anchor_matcher", R), ("num_classes", R), ("focal_loss_alpha", 0.25),
        ("focal_loss_gamma", 2.0), ("smooth_l1_beta", 0.0), ("box_reg_loss_type", 'smooth_l1'),
        ("test_score_thresh", 0.05), ("test_topk_candidates", 1000), ("test_nms_thresh", 0.5),
        ("max_detections_per_image", 100), ("pixel_mean", R), ("pixel_std", R), ("vis_period", 0),
        ("input_format", 'BGR'),
    ],
    "detectron2.modeling.proposal_generator.rpn.RPN.__init__": [
        ("self", R), ("in_features", R), ("head", R), ("anchor_generator", R), ("anchor_matcher", R),
        ("box2box_transform", R), ("batch_size_per_image", R), ("positive_fraction", R), ("pre_nms_topk", R),
        ("post_nms_topk", R), ("nms_thresh", 0.7), ("min_box_size", 0.0), ("anchor_boundary_thresh", -1.0),
        ("loss_weight", 1.0), ("box_reg_loss_type", 'smooth_l1'), ("smooth_l1_beta", 0.0),
    ],
    "detectron2.modeling.roi_heads.roi_heads.StandardROIHeads.__init__": [
        ("self", R), ("box_in_features", R), ("box_pooler", R), ("box_head", R), ("box_predictor", R),
        ("mask_in_features", None), ("mask_pooler", None), ("mask_head", None), ("keypoint_in_features", None),
        ("keypoint_pooler", None), ("keypoint_head", None), ("train_on_pred_boxes", False), ("**kwargs", R),
    ],
    "detectron2.modeling.roi_heads.roi_heads.ROIHeads.__init__": [
        ("self", R), ("num_classes", R), ("batch_size_per_image", R), ("positive_fraction", R),
        ("proposal_matcher", R), ("proposal_append_gt", True),
    ],
    "detectron2.modeling.roi_heads.fast_rcnn.FastRCNNOutputLayers.__init__": [
        ("self", R), ("input_shape", R), ("box2box_transform", R), ("num_classes", R), ("test_score_thresh", 0.0),
        ("test_nms_thresh", 0.5), ("test_topk_per_image", 100), ("cls_agnostic_bbox_reg", False),
        ("smooth_l1_beta", 0.0), ("box_reg_loss_type", 'smooth_l1'), ("loss_weight", 1.0), ("use_fed_loss", False),
        ("use_sigmoid_ce", False), ("get_fed_loss_cls_weights", None), ("fed_loss_num_classes", 50),
    ],
    "detectron2.modeling.roi_heads.box_head.FastRCNNConvFCHead.__init__": [
        ("self", R), ("input_shape", R), ("conv_dims", R), ("fc_dims", R), ("conv_norm", ''),
    ],
    "detectron2.modeling.roi_heads.mask_head.MaskRCNNConvUpsampleHead.__init__": [
        ("self", R), ("input_shape", R), ("num_classes", R), ("conv_dims", R), ("conv_norm", ''), ("**kwargs", R),
    ],
    "detectron2.modeling.roi_heads.mask_head.BaseMaskRCNNHead.__init__": [
        ("self", R), ("loss_weight", 1.0), ("vis_period", 0),
    ],
    "detectron2.modeling.roi_heads.keypoint_head.KRCNNConvDeconvUpsampleHead.__init__": [
        ("self", R), ("input_shape", R), ("num_keypoints", R), ("conv_dims", R), ("**kwargs", R),
    ],
    "detectron2.modeling.roi_heads.keypoint_head.BaseKeypointRCNNHead.__init__": [
        ("self", R), ("num_keypoints", R), ("loss_weight", 1.0), ("loss_normalizer", 1.0),
    ],
    "detectron2.modeling.anchor_generator.DefaultAnchorGenerator.__init__": [
        ("self", R), ("sizes", R), ("aspect_ratios", R), ("strides", R), ("offset", 0.5),
    ],
    "detectron2.modeling.anchor_generator.RotatedAnchorGenerator.__init__": [
        ("self", R), ("sizes", R), ("aspect_ratios", R), ("strides", R), ("angles", R), ("offset", 0.5),
    ],
    "detectron2.modeling.proposal_generator.rpn.StandardRPNHead.__init__": [
        ("self", R), ("in_channels", R), ("num_anchors", R), ("box_dim", 4), ("conv_dims", (-1,)),
    ],
    "detectron2.modeling.meta_arch.retinanet.RetinaNetHead.__init__": [
        ("self", R), ("input_shape", R), ("num_classes", R), ("num_anchors", R), ("conv_dims", R), ("norm", ''),
        ("prior_prob", 0.01),
    ],
    "detectron2.modeling.box_regression.Box2BoxTransformLinear.__init__": [("self", R), ("normalize_by_size", True)],
    "detectron2.modeling.meta_arch.panoptic_fpn.PanopticFPN.__init__": [
        ("self", R), ("sem_seg_head", R), ("combine_overlap_thresh", 0.5), ("combine_stuff_area_thresh", 4096),
        ("combine_instances_score_thresh", 0.5), ("**kwargs", R),
    ],
    "detectron2.modeling.meta_arch.semantic_seg.SemanticSegmentor.__init__": [
        ("self", R), ("backbone", R), ("sem_seg_head", R), ("pixel_mean", R), ("pixel_std", R),
    ],
    "detectron2.modeling.meta_arch.semantic_seg.SemSegFPNHead.__init__": [
        ("self", R), ("input_shape", R), ("num_classes", R), ("conv_dims", R), ("common_stride", R),
        ("loss_weight", 1.0), ("norm", None), ("ignore_value", -1),
    ],
    "detectron2.modeling.backbone.vit.ViT.__init__": [
        ("self", R), ("img_size", 1024), ("patch_size", 16), ("in_chans", 3), ("embed_dim", 768), ("depth", 12),
        ("num_heads", 12), ("mlp_ratio", 4.0), ("qkv_bias", True), ("drop_path_rate", 0.0),
        ("norm_layer", "@LayerNorm"), ("act_layer", "@GELU"), ("use_abs_pos", True), ("use_rel_pos", False),
        ("rel_pos_zero_init", True), ("window_size", 0), ("window_block_indexes", ()),
        ("residual_block_indexes", ()), ("use_act_checkpoint", False), ("pretrain_img_size", 224),
        ("pretrain_use_cls_token", True), ("out_feature", 'last_feat'),
    ],
    "detectron2.modeling.backbone.vit.SimpleFeaturePyramid.__init__": [
        ("self", R), ("net", R), ("in_feature", R), ("out_channels", R), ("scale_factors", R), ("top_block", None),
        ("norm", 'LN'), ("square_pad", 0),
    ],
    "detectron2.modeling.backbone.resnet.ResNet.make_stage": [
        ("block_class", R), ("num_blocks", R), ("in_channels", R), ("out_channels", R), ("**kwargs", R),
    ],
    "detectron2.modeling.backbone.resnet.BasicStem.__init__": [
        ("self", R), ("in_channels", 3), ("out_channels", 64), ("norm", 'BN'),
    ],
    "detectron2.modeling.backbone.fpn.LastLevelP6P7.__init__": [
        ("self", R), ("in_channels", R), ("out_channels", R), ("in_feature", 'res5'),
    ],
    "detectron2.modeling.test_time_augmentation.GeneralizedRCNNWithTTA.__init__": [
        ("self", R), ("cfg", R), ("model", R), ("tta_mapper", None), ("batch_size", 3),
    ],
    "detectron2.modeling.test_time_augmentation.DatasetMapperTTA.__init__": [
        ("self", R), ("min_sizes", R), ("max_size", R), ("flip", R),
    ],
    "detectron2.engine.hooks.PeriodicWriter.__init__": [("self", R), ("writers", R), ("period", 20)],
    "detectron2.engine.hooks.EvalHook.__init__": [
        ("self", R), ("eval_period", R), ("eval_function", R), ("eval_after_train", True),
    ],
    "detectron2.engine.hooks.BestCheckpointer.__init__": [
        ("self", R), ("eval_period", R), ("checkpointer", R), ("val_metric", R), ("mode", 'max'),
        ("file_prefix", 'model_best'),
    ],
    "detectron2.engine.hooks.PreciseBN.__init__": [
        ("self", R), ("period", R), ("model", R), ("data_loader", R), ("num_iter", R),
    ],
    "detectron2.engine.hooks.IterationTimer.__init__": [("self", R), ("warmup_iter", 3)],
    "detectron2.engine.hooks.LRScheduler.__init__": [("self", R), ("optimizer", None), ("scheduler", None)],
    "detectron2.engine.hooks.TorchProfiler.__init__": [
        ("self", R), ("enable_predicate", R), ("output_dir", R), ("activities", None), ("save_tensorboard", True),
    ],
    "detectron2.engine.hooks.AutogradProfiler.__init__": [
        ("self", R), ("enable_predicate", R), ("output_dir", R), ("use_cuda", True),
    ],
    "detectron2.engine.hooks.TorchMemoryStats.__init__": [("self", R), ("period", 20), ("max_runs", 10)],
    "detectron2.engine.hooks.CallbackHook.__init__": [
        ("self", R), ("before_train", None), ("after_train", None), ("before_step", None), ("after_step", None),
    ],
    "detectron2.evaluation.rotated_coco_evaluation.RotatedCOCOEvaluator.__init__": [
        ("self", R), ("dataset_name", R), ("tasks", None), ("distributed", True), ("output_dir", None),
        ("max_dets_per_image", None), ("use_fast_impl", True), ("kpt_oks_sigmas", ()), ("allow_cached_coco", True),
    ],
    "detectron2.evaluation.cityscapes_evaluation.CityscapesEvaluator.__init__": [("self", R), ("dataset_name", R)],
    "detectron2.utils.visualizer.GenericMask.__init__": [
        ("self", R), ("mask_or_polygons", R), ("height", R), ("width", R),
    ],
    "detectron2.utils.visualizer.VisImage.__init__": [("self", R), ("img", R), ("scale", 1.0)],
    "detectron2.utils.video_visualizer.VideoVisualizer.draw_instance_predictions": [
        ("self", R), ("frame", R), ("predictions", R),
    ],
    # Deliberately False here (issue 15: config files never run code unless asked); upstream: True.
    "detectron2.config.config.CfgNode.merge_from_file": [("self", R), ("cfg_filename", R), ("allow_unsafe", False)],
    "detectron2.checkpoint.c2_model_loading.align_and_update_state_dicts": [
        ("model_state_dict", R), ("ckpt_state_dict", R), ("c2_conversion", True),
    ],
    "detectron2.data.build.load_proposals_into_dataset": [("dataset_dicts", R), ("proposal_file", R)],
    "detectron2.data.build.print_instances_class_histogram": [("dataset_dicts", R), ("class_names", R)],
    "detectron2.data.datasets.lvis.load_lvis_json": [
        ("json_file", R), ("image_root", R), ("dataset_name", None), ("extra_annotation_keys", None),
    ],
    "detectron2.data.datasets.pascal_voc.load_voc_instances": [("dirname", R), ("split", R), ("class_names", R)],
    "detectron2.data.datasets.pascal_voc.register_pascal_voc": [
        ("name", R), ("dirname", R), ("split", R), ("year", R), ("class_names", "@CLASS_NAMES"),
    ],
    "detectron2.data.datasets.coco_panoptic.register_coco_panoptic": [
        ("name", R), ("metadata", R), ("image_root", R), ("panoptic_root", R), ("panoptic_json", R),
        ("instances_json", None),
    ],
    "detectron2.data.datasets.coco_panoptic.register_coco_panoptic_separated": [
        ("name", R), ("metadata", R), ("image_root", R), ("panoptic_root", R), ("panoptic_json", R),
        ("sem_seg_root", R), ("instances_json", R),
    ],
    "detectron2.data.datasets.coco_panoptic.load_coco_panoptic_json": [
        ("json_file", R), ("image_dir", R), ("gt_dir", R), ("meta", R),
    ],
    "detectron2.data.transforms.augmentation.apply_augmentations": [("augmentations", R), ("inputs", R)],
    "detectron2.data.transforms.augmentation.AugInput.__init__": [
        ("self", R), ("image", R), ("boxes", None), ("sem_seg", None),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomBrightness.__init__": [
        ("self", R), ("intensity_min", R), ("intensity_max", R),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomLighting.__init__": [("self", R), ("scale", R)],
    "detectron2.data.transforms.augmentation_impl.RandomCrop_CategoryAreaConstraint.__init__": [
        ("self", R), ("crop_type", R), ("crop_size", R), ("single_category_max_area", 1.0),
        ("ignored_category", None),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomResize.__init__": [
        ("self", R), ("shape_list", R), ("interp", "@Image.BILINEAR"),
    ],
    "detectron2.data.transforms.augmentation_impl.RandomApply.__init__": [
        ("self", R), ("tfm_or_aug", R), ("prob", 0.5),
    ],
    "detectron2.data.build.build_batch_data_loader": [
        ("dataset", R), ("sampler", R), ("total_batch_size", R), ("aspect_ratio_grouping", False),
        ("num_workers", 0), ("collate_fn", None), ("drop_last", True), ("single_gpu_batch_size", None),
    ],
}


def _resolve(qualified: str) -> Callable:
    parts = qualified.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    for attr in parts[i:]:
        obj = getattr(obj, attr)
    return obj


@pytest.mark.parametrize("qualified", sorted(SIGNATURES))
def test_signatures_accept_upstream_calls(qualified):
    defaults = _defaults()
    params = list(inspect.signature(_resolve(qualified)).parameters.values())
    expected = SIGNATURES[qualified]
    variadic = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    # *args / **kwargs: upstream's must be there (names of those do not matter).
    ours_var = sorted(variadic[p.kind] for p in params if p.kind in variadic)
    exp_var = sorted(n[: len(n) - len(n.lstrip("*"))] for n, _ in expected if n.startswith("*"))
    assert set(exp_var) <= set(ours_var), (exp_var, ours_var)
    named = [p for p in params if p.kind not in variadic]
    exp_named = [(n, d) for n, d in expected if not n.startswith("*")]
    assert [p.name for p in named[: len(exp_named)]] == [n for n, _ in exp_named]
    for p, (name, default) in zip(named, exp_named):
        if isinstance(default, str) and default.startswith("@"):
            default = defaults[default[1:]]
        got = p.default
        if default is REQUIRED:
            continue  # ours may add a default: upstream's calls pass the argument anyway
        if isinstance(default, float) and isinstance(got, float):
            assert got == pytest.approx(default), name
        else:
            assert got == default or got is default, (name, got, default)
    for extra in named[len(exp_named):]:  # our additions must not break upstream's calls
        assert extra.default is not REQUIRED, f"extra required parameter {extra.name}"


# ------------------------------------------------------- behaviour of added names
def test_visualizer_font_size_scale():
    from detectron2.utils.visualizer import Visualizer

    img = np.zeros((300, 400, 3), np.uint8)
    base = Visualizer(img)._default_font_size
    assert base == max(np.sqrt(300 * 400) // 90, 10 // 1.0)
    assert Visualizer(img, font_size_scale=2.5)._default_font_size == pytest.approx(2.5 * base)
    # The scale reaches the drawn text.
    vis = Visualizer(img, font_size_scale=2.0)
    vis.draw_text("x", (10, 10))
    text = vis.output.ax.texts[-1]
    assert text.get_fontsize() == pytest.approx(2.0 * base * vis.output.scale)


def test_disable_torch_compiler_keeps_the_function():
    from detectron2.layers.wrappers import disable_torch_compiler

    def double(x):
        return 2 * x

    wrapped = disable_torch_compiler(double)
    x = torch.randn(5)
    assert torch.equal(wrapped(x), 2 * x)
    if hasattr(torch, "compiler") and hasattr(torch.compiler, "disable"):
        assert wrapped is not double  # marked for dynamo to skip


def test_allreduce_is_the_differentiable_sum_of_sync_bn():
    from detectron2.layers.batch_norm import AllReduce

    assert issubclass(AllReduce, torch.autograd.Function)
    assert callable(AllReduce.apply)
