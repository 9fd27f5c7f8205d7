"""Peers: sbi's neural ratio, likelihood and posterior estimators, trained with sbi's defaults.

NRE (sbi's `NRE_A`, the amortized ratio of Hermans et al.) trains a classifier d(θ, x) between
joint pairs (θ, x) ~ p(θ, x) and marginal pairs (θ', x) ~ p(θ) p(x), the θ' taken from other rows
of the same batch. At the optimum its logit is

    log r̂(x|θ) = log p(x|θ) − log p(x),

where p(x) is the evidence under the θ distribution of the training pairs. goldmine's ratio
methods estimate r(x|θ, θ_ref) = p(x|θ)/p(x|θ_ref); the evidence cancels in the difference

    log r(x|θ, θ_ref) = log r̂(x|θ) − log r̂(x|θ_ref),

which is what `sbi_nre` returns. `sbi_nle` (sbi's `NLE_A`) returns a flow's log p̂(x|θ) and
`sbi_npe` (sbi's `NPE_C`) a sampler of q(θ|x). sbi draws from torch's global generator; every fit
seeds it inside `torch.random.fork_rng`, so the caller's generator state is left untouched.

`python benchmarks/peers.py` trains NRE on Galton board data sets of 10³ and 10⁴ runs and prints
the error E_θ Σ_x p(x|θ) (log r̂(x|θ, θ_ref) − log r(x|θ, θ_ref))² against the exact ratio.

References:
    Hermans, Begy, Louppe, "Likelihood-free MCMC with amortized approximate ratio estimators",
    ICML 2020, https://arxiv.org/abs/1903.04057
    Papamakarios, Sterratt, Murray, "Sequential neural likelihood", AISTATS 2019,
    https://arxiv.org/abs/1805.07226
    Greenberg, Nonnenmacher, Macke, "Automatic posterior transformation for likelihood-free
    inference", ICML 2019, https://arxiv.org/abs/1905.07488
    Tejero-Cantero et al., "sbi: a toolkit for simulation-based inference", JOSS 5 (2020) 2505,
    https://arxiv.org/abs/2007.09114
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Callable

import torch
from torch import Tensor

from goldmine.simulators.base import draw_prior

INSTALL_HINT = "sbi is needed for the peer benchmarks: pip install goldmine[bench]"


def _sbi_inference():
    try:
        from sbi import inference
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return inference


class _NoTracker:
    """sbi's tracker protocol, doing nothing: sbi's default writes TensorBoard logs to ./sbi-logs."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def _f32(a) -> Tensor:
    return torch.as_tensor(a).to(torch.float32)


def _fit(method: str, theta: Tensor, x: Tensor, prior_low, prior_high, seed: int, max_epochs: int | None,
         prior=None):
    """Trains sbi's `method` class on (θ, x) with a BoxUniform prior (or `prior`, any torch distribution over θ in
    float32, when given: low and high are then ignored); returns (trainer, network)."""
    inference = _sbi_inference()
    from sbi.utils import BoxUniform

    theta, x = _f32(theta), _f32(x)
    if theta.ndim != 2 or x.ndim != 2 or len(theta) != len(x):
        raise ValueError(f"theta and x must be (n, d_theta) and (n, d_x); got {tuple(theta.shape)}, {tuple(x.shape)}.")
    train_args = {} if max_epochs is None else {"max_num_epochs": int(max_epochs)}
    # sbi prints its convergence line unconditionally; the epoch count is kept on the result instead
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(seed)
        prior = BoxUniform(low=_f32(prior_low), high=_f32(prior_high)) if prior is None else prior
        trainer = getattr(inference, method)(prior=prior, show_progress_bars=False, tracker=_NoTracker())
        net = trainer.append_simulations(theta, x).train(**train_args)
    net.eval()
    return trainer, net


def sbi_nre(theta: Tensor, x: Tensor, prior_low, prior_high, seed: int = 0,
            max_epochs: int | None = None) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """Trains sbi's NRE_A (default resnet classifier and training settings) on (θ, x) pairs.

    Arguments:
        theta: (n, d_theta), the parameter point that generated each row of x.
        x: (n, d_x).
        prior_low, prior_high: (d_theta,), the BoxUniform prior's bounds.
        seed: seeds sbi's network initialisation, validation split and batches.
        max_epochs: cap on the epochs; None keeps sbi's default (early stopping only).

    Returns:
        log_ratio(x, theta, reference) → (n,) float64: log r̂(x|θ) − log r̂(x|θ_ref), with x: (n, d_x),
        theta: (n, d_theta) and reference: (d_theta,) or (n, d_theta). Its attribute `epochs` holds
        the epochs sbi trained.
    """
    trainer, net = _fit("NRE_A", theta, x, prior_low, prior_high, seed, max_epochs)

    @torch.no_grad()
    def log_ratio(x: Tensor, theta: Tensor, reference: Tensor) -> Tensor:
        x, theta = _f32(x), _f32(theta)
        reference = _f32(reference).expand_as(theta)
        return (net.unnormalized_log_ratio(theta, x) - net.unnormalized_log_ratio(reference, x)).double()

    log_ratio.epochs = trainer.summary["epochs_trained"][-1]
    return log_ratio


def sbi_nle(theta: Tensor, x: Tensor, prior_low, prior_high, seed: int = 0,
            max_epochs: int | None = None) -> Callable[[Tensor, Tensor], Tensor]:
    """Trains sbi's NLE_A (default density estimator, a MAF) on (θ, x) pairs drawn at θ.

    Returns:
        log_prob(x, theta) → (n,) float64: log p̂(x|θ), with x: (n, d_x) and theta: (n, d_theta).
        Attribute `epochs` as for `sbi_nre`.
    """
    trainer, net = _fit("NLE_A", theta, x, prior_low, prior_high, seed, max_epochs)

    @torch.no_grad()
    def log_prob(x: Tensor, theta: Tensor) -> Tensor:
        return net.log_prob(_f32(x)[None], condition=_f32(theta))[0].double()

    log_prob.epochs = trainer.summary["epochs_trained"][-1]
    return log_prob


def sbi_npe(theta: Tensor, x: Tensor, prior_low, prior_high, seed: int = 0,
            max_epochs: int | None = None) -> Callable[..., Tensor]:
    """Trains sbi's NPE_C (default density estimator, a MAF) on (θ, x) pairs drawn at θ ~ prior.

    Returns:
        sample(x, num_samples, seed=0) → (num_samples, n, d_theta) float64: draws of q(θ|x) for
        each row of x: (n, d_x), restricted to the prior's support as sbi's posterior does.
        Attribute `epochs` as for `sbi_nre`.
    """
    trainer, net = _fit("NPE_C", theta, x, prior_low, prior_high, seed, max_epochs)
    with torch.random.fork_rng(devices=[]):  # building the posterior draws from the prior
        torch.manual_seed(seed)
        posterior = trainer.build_posterior(net)

    @torch.no_grad()
    def sample(x: Tensor, num_samples: int, seed: int = 0) -> Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            draws = posterior.sample_batched((num_samples,), x=_f32(x), show_progress_bars=False)
        return draws.double()

    sample.epochs = trainer.summary["epochs_trained"][-1]
    return sample


# -- orientation study: sbi NRE on the Galton board ---------------------------------------------


def galton_error(log_ratio: Callable, sim, points: int = 101) -> float:
    """E over θ evenly in [−1, 1] of Σ_x p(x|θ)·(log r̂(x|θ, θ_ref) − log r(x|θ, θ_ref))², exact p."""
    theta = torch.linspace(-1.0, 1.0, points, dtype=torch.float64)[:, None]
    p = sim.slot_probs(theta)  # (points, 32)
    p_ref = sim.slot_probs(sim.reference[None])  # (1, 32)
    slots = p.shape[1]
    x = torch.arange(slots, dtype=torch.float64).repeat(points)[:, None]  # slot index fastest
    estimate = log_ratio(x, theta.repeat_interleave(slots, 0), sim.reference).reshape(points, slots)
    reachable = p > 0  # slots no θ reaches carry no weight (and have no finite log r)
    truth = torch.where(reachable, p.log() - p_ref.log(), torch.zeros_like(p))
    sq = torch.where(reachable, (estimate - truth) ** 2, torch.zeros_like(p))
    return float((p * sq).sum(dim=1).mean())


def prior_pairs(sim, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """n fresh runs at θ ~ prior: sbi's own design, for a peer given the same budget as a goldmine data set.

    (A goldmine data set draws half its runs at θ_ref; fed to sbi, that spike of θ distorts the
    product of marginals NRE contrasts against, and it cost sbi's NRE a factor of about 2-4 in error at
    10⁵ Galton runs.)
    """
    generator = torch.Generator().manual_seed(10_000 + seed)
    theta = draw_prior(sim.prior, n, seed=20_000 + seed)
    return theta.float(), sim.sample(theta, generator=generator).x.float()


def sbi_pairs(data) -> tuple[Tensor, Tensor]:
    """Every row of a goldmine data set as an sbi pair (θ_gen, x): label-1 rows were drawn at θ_ref."""
    rows = data.tensors(["theta", "x", "label"])
    reference = data.reference.to(torch.float32).expand_as(rows["theta"])
    theta_gen = torch.where(rows["label"].reshape(-1, 1) == 0, rows["theta"], reference)
    return theta_gen, rows["x"]


def main(budgets=(1_000, 10_000), seeds=(0,)) -> list[dict]:
    import tempfile
    import time
    from pathlib import Path

    import goldmine as gm
    import sbi

    sim = gm.simulators.GaltonBoard()
    low, high = sim.prior.base_dist.low, sim.prior.base_dist.high
    print(f"sbi {sbi.__version__} NRE_A on the Galton board, torch threads {torch.get_num_threads()}")
    print(f"{'runs':>7} {'seed':>4} {'epochs':>6} {'wall [s]':>8} {'cpu [s]':>8} {'error':>8}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in budgets:
            for seed in seeds:
                data = gm.simulate(sim, n, Path(tmp) / f"galton_{n}_{seed}.h5", seed=seed, progress=False)
                theta, x = sbi_pairs(data)
                start, cpu = time.perf_counter(), time.process_time()
                log_ratio = sbi_nre(theta, x, low, high, seed=seed)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                error = galton_error(log_ratio, sim)
                results.append(dict(runs=n, seed=seed, epochs=log_ratio.epochs, seconds=seconds, cpu=cpu, error=error))
                print(f"{n:>7} {seed:>4} {log_ratio.epochs:>6} {seconds:>8.1f} {cpu:>8.1f} {error:>8.4f}", flush=True)
    return results


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1_000, 10_000], help="simulator runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="data and training seeds")
    args = parser.parse_args()
    main(args.budgets, args.seeds)
