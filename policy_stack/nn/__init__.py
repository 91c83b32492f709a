"""Network building blocks shared by the policy families (torch only)."""
from policy_stack.nn.ema import EMAConfig, EMAModel
from policy_stack.nn.obs_encoder import ObservationEncoder, PositionalObservationEncoder
from policy_stack.nn.preprocess import DerivedFeature, ObsPreprocessor, depth_key, rgb_key, validate_observation
from policy_stack.nn.transformer import MultiHeadAttention, TransformerBlock, causal_mask
from policy_stack.nn.unet1d import ConditionalUnet1D
from policy_stack.nn.vision import RGBDEncoder, SpatialSoftmax, crop_images

__all__ = ["ConditionalUnet1D", "DerivedFeature", "EMAConfig", "EMAModel", "MultiHeadAttention", "ObsPreprocessor",
           "ObservationEncoder", "PositionalObservationEncoder", "RGBDEncoder", "SpatialSoftmax", "TransformerBlock",
           "causal_mask", "crop_images", "depth_key", "rgb_key", "validate_observation"]
