"""The zoom augmentation of KITE grounding training keeps every keypoint on its object."""
import torch

from policy_stack.policies.kite.grounding import gaussian_target
from policy_stack.policies.kite.train_grounding import augment, random_zoom


def _scene(kp: torch.Tensor, h: int = 64, w: int = 64) -> torch.Tensor:
    """One image per keypoint: a bright Gaussian blob centred exactly (sub-pixel) on it, in all 3 channels."""
    blob = gaussian_target(kp, h, w, 2.5)
    return blob[:, None].expand(-1, 3, h, w).contiguous()


def _centroid(image: torch.Tensor) -> torch.Tensor:
    """(u, v) intensity centroid of the blob (the background is 0)."""
    m = image[0] * (image[0] > 0.05)
    vs, us = torch.meshgrid(torch.arange(m.shape[0]).float(), torch.arange(m.shape[1]).float(), indexing="ij")
    return torch.stack([(m * us).sum() / m.sum(), (m * vs).sum() / m.sum()])


def test_zoomed_keypoints_stay_on_their_blob_and_the_scale_varies():
    gen = torch.Generator().manual_seed(3)
    kp = torch.rand(64, 2, generator=gen) * 40 + 12      # away from the border, so blobs stay whole
    images = _scene(kp)
    out, kp2 = random_zoom(images, kp, 1.5, gen)
    # blobs that a zoom pushed against the border are cut off, which moves their centroid: judge the rest
    whole = ((kp2 > 12) & (kp2 < 51)).all(1)
    assert whole.sum() > 32
    errors = torch.stack([torch.linalg.norm(_centroid(out[i]) - kp2[i]) for i in torch.nonzero(whole).flatten().tolist()])
    assert errors.max() < 0.15, errors.max()
    # the blob really was rescaled: its spread changes with the zoom, in both directions
    spread = torch.stack([(out[i, 0] > 0.5).sum() for i in range(len(kp))]).float()
    base = (images[0, 0] > 0.5).sum().float()
    assert spread.min() < 0.8 * base and spread.max() > 1.25 * base
    assert ((kp2 >= 0) & (kp2 <= 63)).all()


def test_augment_with_zoom_and_shift_keeps_keypoints_on_the_object():
    gen = torch.Generator().manual_seed(5)
    kp = torch.rand(32, 2, generator=gen) * 30 + 17
    out, kp2 = augment(_scene(kp), kp, shift_px=4, color=0.0, generator=gen, zoom=1.4)
    # the brightest pixel of each augmented image is within a pixel of its moved keypoint
    flat = out[:, 0].reshape(len(kp), -1).argmax(1)
    peak = torch.stack([flat % 64, flat // 64], 1).float()
    assert torch.linalg.norm(peak - kp2, dim=1).max() <= 1.0
    assert not torch.allclose(kp2, kp)
