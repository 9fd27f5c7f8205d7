"""One call from a simulator and a prior to the posterior of an observation: `goldmine.infer`.

    result = gm.infer(simulator, prior, x_obs, method="npe", budget=10_000, seed=0)
    result.sample((1000,)); result.log_prob(theta); print(result.summary()); result.plot("post.png")

It simulates `budget` runs in memory (no file), trains the method's estimator with its default
settings, and returns the posterior of x_obs (`goldmine.sequential.Inference`); with `rounds=k` the
budget is spent over k rounds that each simulate at θ from the last posterior (npe, nle, nre and the
gold methods; see `goldmine.sequential`). The simulator is a goldmine `Simulator`, the name of a built-in
("galton", ...), or a plain function θ (n, theta_dim) → x (n, x_dim) of torch tensors, as sbi's
simulators are, which runs in the prior's dtype (`BlackBoxSimulator`).
"""

from __future__ import annotations

import torch

from . import checks
from .estimators.registry import get_method
from .inference.model import check_x_obs
from .sequential import Inference, joint_draws, run_rounds
from .simulators.base import BlackBoxSimulator, Simulator
from .simulators.priors import check_prior
from .workflow.training import make_estimator

__all__ = ["infer"]


def infer(simulator, prior=None, x_obs=None, method: str = "npe", budget: int = 10_000, *, rounds: int = 1,
          seed: int = 0, proposal=None, progress: bool = True, mcmc: dict | None = None, device=None,
          **options) -> Inference:
    """The posterior of one observation from a simulator, in one call (sbi's `infer`, with goldmine's methods).

    Arguments:
        simulator: a goldmine `Simulator`; a built-in's name ("galton", "weinberg", "poisson", "mixture",
            "lotka_volterra"); or a function θ (n, theta_dim) → x (n, x_dim) (or (n,)) of torch tensors,
            with its randomness from torch's global generator (seeded per call).
        prior: any torch distribution over θ with `log_prob` and `sample`; the simulator's own by
            default (required for a function).
        x_obs: the observation (1, x_dim) or (x_dim,); nle, nre and the gold methods (one round) also
            take n i.i.d. observations (n, x_dim).
        method: npe (default), nle, nre, or any other method of `goldmine list methods` that learns
            from data (the gold methods need a simulator with gold).
        budget: simulator runs in total. npe, nle and nre run all of them at θ from the prior (or
            the round's proposal); the other methods draw the data set's pair layout (half at θ_ref).
        rounds: sequential rounds (npe and the ratio and likelihood methods, gold ones included;
            `goldmine.sequential`); the budget is split evenly over them.
        seed: seeds θ, the runs, the training and the posterior's draws.
        proposal: the first round's proposal instead of the prior (anything with `sample(n)`).
        progress: show progress bars.
        mcmc: options of `goldmine.inference.posterior` (chains, warmup, steps, ...) for the MCMC
            posteriors of nle, nre and the other likelihood and ratio methods.
        device: where the estimators train and compute (`goldmine.checks.device`): the CPU by default, "cuda",
            "mps", or "auto" for an accelerator when present.
        **options: options of the method's estimator (`goldmine list METHOD`), e.g. epochs=100.

    Returns:
        A `goldmine.sequential.Inference`: `sample(n)`, `log_prob(theta)`, `summary()`, `plot(path)`,
        and its `posterior`, `estimator`, `simulations`, `rounds`.

    Raises:
        ValueError: no x_obs, several observations for npe, an unknown method or option, or a method
            that needs gold from a simulator that has none.
        TypeError: a prior without log_prob or sample, or a simulator of another kind.

    Example:
        >>> import torch, goldmine as gm
        >>> prior = gm.simulators.box_prior([-2.0, -2.0], [2.0, 2.0])
        >>> result = gm.infer(lambda t: t + 0.1 * torch.randn(t.shape), prior, torch.tensor([0.5, -0.3]),
        ...                   budget=500, epochs=2, progress=False)
        >>> result.sample((10,)).shape, result.simulations
        (torch.Size([10, 2]), 500)
    """
    if x_obs is None:
        raise ValueError("infer needs the observation: infer(simulator, prior, x_obs, ...).")
    sim = _simulator(simulator, prior)
    prior = check_prior(sim.prior if prior is None else prior, sim.theta_dim)
    spec = get_method(method)
    if not spec.trainable:
        raise ValueError(f"{method} does not learn from simulations of a budget: use npe, nle, nre or another method "
                         "of `goldmine list methods` (abc: gm.inference.rejection_abc / smc_abc).")
    if spec.needs_gold and not sim.has_gold:
        sim.require_gold()
    x = check_x_obs(x_obs, sim.x_dim)
    if method == "npe" and len(x) != 1:
        raise ValueError(f"npe learns q(θ|x) for one observation, but x_obs has {len(x)} rows: pass one row, or use "
                         "nle or nre for i.i.d. observations.")
    checks.flag(progress, "progress")
    device = None if device is None else checks.device(device)  # an absent device fails before any simulation
    known = _options(method)
    options = {**{k: v for k, v in (("progress", progress), ("seed", seed)) if k in known}, **options}
    if "prior" in known:
        options.setdefault("prior", prior)

    def build():
        return make_estimator(method, options)

    build()  # bad options fail here, before any simulation
    if not joint_draws(method) and prior is not sim.prior:
        _check_same_support(sim, prior)
    return run_rounds(sim, prior, x, method, budget, build, rounds=rounds, seed=seed, proposal=proposal,
                      progress=progress, mcmc=mcmc, device=device)


def _options(method: str) -> dict:
    from .workflow.training import method_options

    return method_options(method)


def _simulator(simulator, prior) -> Simulator:
    if isinstance(simulator, Simulator):
        return simulator
    if isinstance(simulator, str):
        from .workflow.simulators import make_simulator

        return make_simulator(simulator)
    if callable(simulator):
        if prior is None:
            raise ValueError("a simulator function needs its prior: infer(fn, prior, x_obs, ...).")
        check_prior(prior)
        return BlackBoxSimulator(simulator, prior, numpy=False, name=getattr(simulator, "__name__", "simulator"))
    raise TypeError(f"simulator must be a goldmine Simulator, a built-in's name or a function θ → x; got "
                    f"{type(simulator).__name__}.")


def _check_same_support(sim: Simulator, prior) -> None:
    """The pair layout runs θ_ref, which must lie in the support of the prior used instead of the simulator's."""
    inside = prior.support.check(torch.as_tensor(sim.reference, dtype=torch.float64)[None])
    if not bool(inside.all()):
        raise ValueError(f"θ_ref = {sim.reference.tolist()} lies outside the support of the prior given: the pair "
                         "layout simulates at θ_ref; give a prior that contains it.")
