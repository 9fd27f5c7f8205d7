"""Bad input of an sbi user (issue 18 targets): priors without a usable density, proposals goldmine cannot use,
chains that do not converge. Each is refused, or warned about, with a message that names the fix."""

import pytest
import torch
from torch.distributions import Distribution, Independent, Normal, Uniform

import goldmine as gm
from goldmine.sequential import run_rounds

PRIOR = gm.simulators.box_prior([-2.0, -2.0], [2.0, 2.0])
X_O = torch.tensor([[0.5, -0.3]])


def shift(theta):
    return theta.float() + 0.2 * torch.randn(theta.shape)


class NoDensity(Distribution):
    """Draws, but its log_prob is torch's NotImplementedError."""

    arg_constraints = {}

    def __init__(self):
        super().__init__(event_shape=(2,), validate_args=False)

    def sample(self, sample_shape=()):
        return torch.rand(*sample_shape, 2)


class NanDensity(NoDensity):
    """A user's prior whose log_prob is NaN where it draws."""

    def log_prob(self, value):
        return torch.full(value.shape[:-1], float("nan"))


def test_a_prior_without_a_usable_log_prob_is_refused_with_the_fix():
    sim = gm.simulators.BlackBoxSimulator(shift, PRIOR, numpy=False)
    for prior in (NoDensity(), object()):
        with pytest.raises(TypeError, match="log_prob|sample.*Independent\\(Normal"):
            run_rounds(sim, prior, X_O, "nre", 100, lambda: None, progress=False)
    with pytest.raises(ValueError, match="is \\[nan, nan\\]: a prior must have a finite log-density where it draws"):
        gm.infer(shift, NanDensity(), X_O, budget=100, progress=False)
    # one log-density per θ: independent components not made into an event are refused before any simulation
    batch = Uniform(-2 * torch.ones(2), 2 * torch.ones(2))
    with pytest.raises(ValueError, match="Independent\\(..., 1\\)"):
        gm.inference.Model(gm.simulators.GaltonBoard(), prior=batch)
    assert gm.simulators.priors.check_prior(Independent(Normal(torch.zeros(2), 1.0), 1), 2) is not None


def test_a_proposal_goldmine_cannot_use_is_refused_with_the_fix():
    inside = Independent(Uniform(-torch.ones(2), torch.ones(2)), 1)
    with pytest.raises(ValueError, match="npe trained on θ from a proposal.*use rounds=.*nle or nre"):
        gm.infer(shift, PRIOR, X_O, method="npe", budget=100, proposal=inside, progress=False)
    with pytest.raises(TypeError, match="has no sample\\(n\\)"):
        gm.infer(shift, PRIOR, X_O, method="nre", budget=100, proposal=[0.1, 0.2], progress=False)
    leaky = Independent(Normal(torch.zeros(2), 3.0), 1)  # mostly inside the box, not only
    with pytest.raises(ValueError, match="outside the prior's support.*Restrict it to the support"):
        gm.infer(shift, PRIOR, X_O, method="nle", budget=100, proposal=leaky, progress=False)


def test_chains_that_do_not_converge_warn_with_the_fix():
    """Random-walk chains on the two modes of two_moons' exact posterior, too short to cross: R-hat warns."""
    sim = gm.simulators.TwoMoons()
    x_obs = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="may not represent the posterior.*R-hat.*Run longer.*sampler='tempered'"):
        gm.inference.posterior(gm.inference.Model(sim), x_obs, sampler="metropolis", chains=4, warmup=20, steps=40,
                               progress=False)
