import math

import pytest
import torch

# Small tensors and small networks run fastest on one thread, and two cores shared by pytest and
# the processes that some tests start are oversubscribed by torch's default thread pool.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def eft_sources():
    """A factory of the weighted parton-level EFT events that the physics tests share: events →
    (the process, its events without nuisances, the same events with a normalisation and a scale nuisance)."""
    from goldmine.physics.events import WeightedEvents
    from goldmine.physics.morphing import choose_benchmarks
    from goldmine.physics.nuisance import Nuisance
    from goldmine.physics.process import EXPONENTS, EFTProcess

    def make(events: int):
        sim = EFTProcess("parton")
        morph = choose_benchmarks(EXPONENTS, sim.prior, candidates=30, points=200, fixed=sim.reference)
        ev = sim.weighted_events(events, morph.benchmarks, seed=0)
        tilt = (ev.parton[:, 0] / 0.35) ** 0.3  # a scale-like variation that tilts the mass spectrum
        nuisances = [Nuisance("norm", normalisation=0.1), Nuisance("scale", up=tilt, down=1 / tilt)]
        plain = WeightedEvents(ev.parton, ev.weights, morph, sim.prior, sim.reference)
        return sim, plain, WeightedEvents(ev.parton, ev.weights, morph, sim.prior, sim.reference, nuisances=nuisances)

    return make


@pytest.fixture(scope="session")
def eft_likelihood(eft_sources):
    """The EFT events with nuisances (1500 events), their extended likelihood at 300 expected SM events, and a 5 × 5
    grid over the coefficients: (source, likelihood, grid)."""
    from goldmine.physics.limits import ExtendedLikelihood

    src = eft_sources(1500)[2]
    luminosity = 300.0 / float(src.cross_section(src.reference[None])[0])
    full = ExtendedLikelihood(src, src.cross_section, luminosity, poi_dim=2)
    ax = torch.linspace(-0.3, 0.3, 5, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2)
    return src, full, grid


@pytest.fixture(scope="session")
def shift():
    """x = θ + N(0, 1), θ ∈ [−2, 2]: continuous x with an exact likelihood (ℓ an exact parabola of curvature n)."""
    from goldmine.simulators.base import DTYPE, Draws, Simulator, box_prior

    class Shift(Simulator):
        name, theta_dim, x_dim = "shift", 1, 1

        def __init__(self):
            self.prior = box_prior([-2.0], [2.0])
            self.reference = torch.zeros(1, dtype=DTYPE)

        def sample(self, theta, generator=None) -> Draws:
            theta = self.check_theta(theta)
            return Draws(theta + torch.randn(theta.shape, dtype=DTYPE, generator=generator), None)

        def log_prob(self, x, theta):
            x, theta = self.check_x(x), self.check_theta(theta)
            return (-0.5 * (x - theta) ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)

    return Shift()
