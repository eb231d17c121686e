"""PointRend: Image Segmentation as Rendering (Kirillov et al., 2020), and Implicit
PointRend. Importing the package registers its heads."""
from .config import add_pointrend_config
from .mask_head import ConvFCHead, ImplicitPointRendMaskHead, PointRendMaskHead
from .semantic_seg import PointRendSemSegHead
from .color_augmentation import ColorAugSSDTransform
from .point_features import (
    generate_regular_grid_point_coords,
    get_point_coords_wrt_image,
    get_uncertain_point_coords_on_grid,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    point_sample_fine_grained_features,
    sample_point_labels,
)
from .point_head import POINT_HEAD_REGISTRY, ImplicitPointHead, StandardPointHead, build_point_head, roi_mask_point_loss
from .roi_heads import PointRendROIHeads
