"""StrongLensing is invariant in distribution under the 8 symmetries of the square, which the symmetric CNN
embedding (`{"name": "cnn", "symmetric": True}`) builds in: the renderer is equivariant (the image of the
mirrored latent is the mirrored image, exactly) and the latent distribution is invariant (its boxes are)."""

import math

import pytest
import torch

from goldmine.simulators.lensing import HOST, SOURCE, StrongLensing


def mirror_x(z):
    """The latent of the image mirrored in x (columns reversed): x → −x, φ → π − φ, shear γ₂ → −γ₂."""
    z = {k: v.clone() for k, v in z.items()}
    for key in ("center", "source_center", "position"):
        z[key][..., 0] = -z[key][..., 0]
    for key in ("phi", "source_phi"):
        z[key] = math.pi - z[key]
    z["shear"][:, 1] = -z["shear"][:, 1]
    return z


def swap_xy(z):
    """The latent of the transposed image: x ↔ y, angles φ → π/2 − φ, shear γ₁ → −γ₁."""
    z = {k: v.clone() for k, v in z.items()}
    for key in ("center", "source_center", "position"):
        z[key] = z[key].flip(-1)
    for key in ("phi", "source_phi"):
        z[key] = math.pi / 2 - z[key]
    z["shear"][:, 0] = -z["shear"][:, 0]
    return z


@pytest.mark.parametrize("size", [12, 15])
def test_the_renderer_is_equivariant_under_the_generators_of_the_square_group(size):
    sim = StrongLensing(size=size)
    theta = torch.tensor([[0.2, -1.6]], dtype=torch.float64).expand(6, 2)
    z = sim.sample_latent(theta, torch.Generator().manual_seed(3))
    assert int(z["n_sub"].sum()) > 0  # the subhalos' deflections are part of what is checked
    image = sim.render(z, noise=False)
    torch.testing.assert_close(sim.render(mirror_x(z), noise=False), image.flip(-1), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sim.render(swap_xy(z), noise=False), image.transpose(-2, -1), rtol=1e-9, atol=1e-9)


def test_the_latent_distribution_is_invariant_under_them():
    # centres, shear and the subhalos' field are symmetric boxes; angles are uniform over a full period π,
    # so φ → π − φ and φ → π/2 − φ (mod π) keep them uniform; noise is i.i.d. and the PSF round
    for bounds in (HOST["center"], HOST["shear"], SOURCE["center"]):
        assert bounds[0] == -bounds[1]
    assert HOST["phi"] == SOURCE["phi"] == (0.0, math.pi)
    kernel = StrongLensing(size=16).kernel[0, 0]
    torch.testing.assert_close(kernel, kernel.flip(-1))
    torch.testing.assert_close(kernel, kernel.T)
