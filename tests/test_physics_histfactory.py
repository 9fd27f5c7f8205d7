"""The pyhf histogram baseline against a binned Poisson likelihood written out by hand."""

import pytest
import torch

from goldmine.physics import histfactory as hf
from goldmine.physics import limits as lim

pytest.importorskip("pyhf")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def source(eft_sources):
    return eft_sources(1500)[2]


def test_pyhf_without_systematics_is_the_binned_poisson_likelihood(source):
    grid = torch.tensor([[0.0, 0.0], [0.2, 0.0], [0.0, -0.25], [-0.15, 0.2]], dtype=torch.float64)
    luminosity = 300.0 / float(source.cross_section(source.reference[None])[0])
    truth = torch.zeros(1, 4, dtype=torch.float64)
    bin_of = hf.quantile_bins(source.x, source.event_weights(truth)[0], (0, 1), 3)
    counts = hf.binned_counts(source, truth, bin_of, 9, luminosity)[0]
    assert torch.allclose(counts, torch.full_like(counts, 300.0 / 9), rtol=0.3)  # equal expected counts, roughly
    prof = hf.histogram_profile(source, grid, counts, bin_of, 9, luminosity, systematics=False)
    expected = hf.binned_counts(source, torch.cat([grid, torch.zeros(4, 2, dtype=torch.float64)], -1), bin_of, 9,
                                luminosity)
    by_hand = (counts * torch.log(expected) - expected).sum(-1)
    assert torch.allclose(prof.q, -2 * (by_hand - by_hand.max()), atol=1e-6)


@pytest.mark.slow
def test_histogram_limits_are_looser_than_the_unbinned_truth(source):
    ax = torch.linspace(-0.3, 0.3, 5, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2)
    luminosity = 300.0 / float(source.cross_section(source.reference[None])[0])
    binned = hf.histogram_limits(source, grid, [0.0, 0.0], luminosity, observables=(0, 1), bins=3, systematics=False)
    with_syst = hf.histogram_limits(source, grid, [0.0, 0.0], luminosity, observables=(0, 1), bins=3)
    exact = lim.profile(lim.ExtendedLikelihood(source, source.cross_section, luminosity, poi_dim=2), grid,
                        lim.asimov(source, source.reference, luminosity), systematics=False)
    assert (binned.profile.q <= exact.q + 1e-6).all()           # binning loses information
    assert (with_syst.profile.q <= binned.profile.q + 1e-6).all()  # systematics loosen
    assert with_syst.contains([0.0, 0.0])
