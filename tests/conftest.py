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
