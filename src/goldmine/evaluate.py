"""Metrics of surrogates against exact likelihoods, by quadrature over x.

For simulators with a tractable p(x|θ) and a quadrature grid over x (`sim.x_grid()`: nodes x_i,
weights w_i with Σ_i w_i f(x_i) ≈ ∫ f(x) dx), the errors are expectations computed exactly rather
than estimated from samples:

    ε_r(θ) = E_{x~p(x|θ)} [(log r̂(x|θ, θ_ref) − log r(x|θ, θ_ref))²],
             log r(x|θ, θ_ref) = log p(x|θ) − log p(x|θ_ref),    mse_r = mean of ε_r over a θ grid,

    mse_t = E_{x~p(x|θ_ref)} ‖t̂(x) − t(x|θ_ref)‖²,    t(x|θ) = ∇_θ log p(x|θ) (autograd),

    I(θ) = E_{x~p(x|θ)} [t(x|θ) t(x|θ)ᵀ]  (the Fisher information).

Without a quadrature grid (a simulator whose x has more than a few dimensions) the same expectations are
estimated by Monte Carlo over x: `samples` runs x_k ~ p(x|θ) drawn with the simulator at each θ point give

    ε̂_r(θ) = (1/K) Σ_k (log r̂(x_k|θ, θ_ref) − log r(x_k|θ, θ_ref))²,   stderr(ε̂_r(θ)) = sd_k / √K,

and mse_r's standard error sqrt(Σ_θ stderr²) / g (independent runs per point); likewise for mse_t at θ_ref.
The results say which was done ("integration": "quadrature" or "monte carlo") and the standard error
("stderr", 0 for quadrature).

Nodes where p(x|θ) ≤ 1e-12 (`THRESHOLD`) are left out of the ratio error: there log p(x|θ) may
be −∞ (−∞·0 is undefined) and their weight in the expectation is negligible. The score error and
the Fisher information skip only nodes with p(x|θ) = 0, where the score is undefined. The trivial surrogates log r̂ = 0 and t̂ = 0 score
mse_r = mean_θ E[(log r)²] and mse_t = tr I(θ_ref): the scale to compare against.

References:
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Independent, Uniform

from . import checks
from .simulators.base import DTYPE, Simulator, has_exact

THRESHOLD = 1e-12
PAIRS_PER_CHUNK = 100_000
#: simulator runs of a Monte Carlo evaluation by default, spread evenly over the θ points (at least MC_MIN each)
MC_RUNS = 50_000
MC_MIN = 50
GRID_POINTS = {1: 101, 2: 21}  # default θ grid points per dimension, by d_θ


def log_ratio_error(estimator, sim: Simulator, theta_grid=None, samples: int | None = None, seed: int = 0) -> dict:
    """The expected squared error of log r̂(x|θ, θ_ref) under p(x|θ), averaged over a θ grid.

    Arguments:
        estimator: a fitted ratio surrogate: `log_ratio(x, theta) -> (n,)` and the attributes
            `theta_dim_`, `x_dim_`, `reference_` (θ_ref, (d_θ,)).
        sim: the simulator it was trained on, with an exact `log_prob` (and an `x_grid` for quadrature).
        theta_grid: (g, d_θ) points; by default an even grid over the prior's box: 101 points
            for d_θ = 1 (for the Galton board, −1 to 1), 21 × 21 for d_θ = 2.
        samples: runs of the simulator per θ point for a Monte Carlo estimate over x; by default
            quadrature when the simulator has an `x_grid`, else Monte Carlo with `MC_RUNS` runs in all.
        seed: the seed of the Monte Carlo runs.

    Returns:
        {"mse": mean_θ ε_r(θ), "per_theta": ε_r (g,), "theta_grid": (g, d_θ), "stderr": the standard
        error of mse (0 for quadrature), "integration": "quadrature" or "monte carlo", "samples": runs
        per θ point (Monte Carlo)}.

    Example:
        >>> from goldmine.simulators import GaltonBoard
        >>> class Zero:  # the trivial surrogate log r̂ = 0
        ...     theta_dim_, x_dim_, reference_ = 1, 1, torch.zeros(1)
        ...     def log_ratio(self, x, theta):
        ...         return torch.zeros(len(x))
        >>> out = log_ratio_error(Zero(), GaltonBoard())
        >>> out["per_theta"].shape, out["theta_grid"].shape, out["mse"] > 0
        (torch.Size([101]), torch.Size([101, 1]), True)
    """
    ref = _check(estimator, sim, "log_ratio")
    grid = default_theta_grid(sim) if theta_grid is None else sim.check_theta(theta_grid, "theta_grid").detach()
    samples = _monte_carlo(sim, samples, len(grid))
    if samples:
        return _log_ratio_error_mc(estimator, sim, grid, ref, samples, seed)
    x, w = _x_grid(sim)
    m = len(x)
    log_p_ref = _log_prob(sim, x, ref.expand(m, -1))
    per_theta = []
    for theta in grid.split(max(1, PAIRS_PER_CHUNK // m)):
        k = len(theta)
        theta_rep, x_rep = theta.repeat_interleave(m, 0), x.repeat(k, 1)
        log_p = _log_prob(sim, x_rep, theta_rep).reshape(k, m)
        with torch.no_grad():
            out = estimator.log_ratio(x_rep, theta_rep)
        est = _as_rows(out, k * m, (), "log_ratio").reshape(k, m)
        keep = log_p.exp() > THRESHOLD
        term = torch.where(keep, log_p.exp() * (est - (log_p - log_p_ref)) ** 2, torch.zeros_like(log_p))
        per_theta.append((term * w).sum(1))
    per_theta = torch.cat(per_theta)
    return {"mse": float(per_theta.mean()), "per_theta": per_theta, "theta_grid": grid, "stderr": 0.0,
            "integration": "quadrature"}


def _monte_carlo(sim: Simulator, samples, points: int) -> int:
    """Runs per θ point of a Monte Carlo evaluation, or 0 for quadrature."""
    if samples is not None:
        return checks.int_at_least(samples, "samples", 2)
    if type(sim).x_grid is not Simulator.x_grid:
        return 0
    return max(MC_MIN, MC_RUNS // points)


def _log_ratio_error_mc(estimator, sim: Simulator, grid: Tensor, ref: Tensor, samples: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(checks.seed(seed))
    per_theta, variance = [], []
    for theta in grid.split(max(1, PAIRS_PER_CHUNK // samples)):
        k = len(theta)
        theta_rep = theta.repeat_interleave(samples, 0)
        x = sim.check_x(sim.sample(theta_rep, generator=generator).x.detach(), "x")
        log_r = _log_prob(sim, x, theta_rep) - _log_prob(sim, x, ref.expand(len(x), -1))
        with torch.no_grad():
            est = _as_rows(estimator.log_ratio(x, theta_rep), len(x), (), "log_ratio")
        sq = ((est - log_r) ** 2).reshape(k, samples)
        sq = torch.where(torch.isfinite(log_r).reshape(k, samples), sq, torch.nan)  # p(x|θ_ref) = 0: left out
        per_theta.append(sq.nanmean(1))
        variance.append(_nanvar(sq) / (~sq.isnan()).sum(1).clamp(min=1))
    per_theta, variance = torch.cat(per_theta), torch.cat(variance)
    return {"mse": float(per_theta.mean()), "per_theta": per_theta, "theta_grid": grid,
            "stderr": float(variance.sum().sqrt() / len(grid)), "integration": "monte carlo", "samples": samples}


def _nanvar(values: Tensor) -> Tensor:
    """The sample variance of each row, ignoring NaN: (k, m) → (k,)."""
    mean = values.nanmean(1, keepdim=True)
    count = (~values.isnan()).sum(1).clamp(min=2)
    return ((values - mean) ** 2).nansum(1) / (count - 1)


def score_error(estimator, sim: Simulator, samples: int | None = None, seed: int = 0) -> dict:
    """The expected squared error E_{x~p(x|θ_ref)} ‖t̂(x) − ∇_θ log p(x|θ)|_{θ_ref}‖².

    Arguments:
        estimator: a fitted score surrogate: `score(x) -> (n, d_θ)` and the attributes
            `theta_dim_`, `x_dim_`, `reference_` (θ_ref, (d_θ,)).
        sim: the simulator it was trained on, with an exact `log_prob` (and an `x_grid` for quadrature).
        samples: runs at θ_ref for a Monte Carlo estimate over x; by default quadrature when the
            simulator has an `x_grid`, else Monte Carlo with `MC_RUNS` runs.
        seed: the seed of the Monte Carlo runs.

    Returns:
        {"mse": the error, "relative": mse / tr I(θ_ref) (1 for the trivial t̂ = 0),
        "reference": θ_ref (d_θ,), "stderr": mse's standard error (0 for quadrature), "integration"}.
    """
    ref = _check(estimator, sim, "score")
    samples = _monte_carlo(sim, samples, 1)
    if samples:
        generator = torch.Generator().manual_seed(checks.seed(seed))
        x = sim.check_x(sim.sample(ref.expand(samples, -1), generator=generator).x.detach(), "x")
        log_p, t = log_prob_and_score(sim, x, ref.expand(samples, -1))
        est = _as_rows(estimator.score(x), samples, (sim.theta_dim,), "score").detach()
        keep = (log_p > -math.inf) & torch.isfinite(t).all(1)
        sq, norm = (est - t)[keep].pow(2).sum(1), t[keep].pow(2).sum(1)
        mse = float(sq.mean())
        return {"mse": mse, "relative": mse / float(norm.mean()), "reference": ref,
                "stderr": float(sq.std() / math.sqrt(len(sq))), "integration": "monte carlo", "samples": samples}
    x, w = _x_grid(sim)
    d = sim.theta_dim
    mse = torch.zeros((), dtype=DTYPE)
    trace = torch.zeros((), dtype=DTYPE)
    for xs, ws in zip(x.split(PAIRS_PER_CHUNK), w.split(PAIRS_PER_CHUNK)):
        log_p, t = log_prob_and_score(sim, xs, ref.expand(len(xs), -1))
        est = _as_rows(estimator.score(xs), len(xs), (d,), "score").detach()
        keep = log_p > -math.inf
        p = torch.where(keep, log_p.exp(), torch.zeros_like(log_p))
        mse = mse + (ws * p * torch.where(keep[:, None], est - t, torch.zeros_like(t)).pow(2).sum(1)).sum()
        trace = trace + (ws * p * torch.where(keep[:, None], t, torch.zeros_like(t)).pow(2).sum(1)).sum()
    return {"mse": float(mse), "relative": float(mse / trace), "reference": ref, "stderr": 0.0,
            "integration": "quadrature"}


def exact_fisher_information(sim: Simulator, theta) -> Tensor:
    """The exact Fisher information I(θ) = E_{x~p(x|θ)}[t tᵀ], t = ∇_θ log p(x|θ), by quadrature.

    Arguments:
        sim: a simulator with an exact `log_prob` and an `x_grid`.
        theta: one point (d_θ,) or a batch (n, d_θ).

    Returns:
        (d_θ, d_θ) for one point, (n, d_θ, d_θ) for a batch.

    Example:
        >>> from goldmine.simulators import Poisson
        >>> round(exact_fisher_information(Poisson(), torch.tensor([2.0])).item(), 12)  # e^θ
        7.389056098931
    """
    theta_in = torch.as_tensor(theta)
    single = theta_in.ndim == 0 or (theta_in.ndim == 1 and theta_in.shape[0] == sim.theta_dim)
    theta = sim.check_theta(theta_in.reshape(1, -1) if single else theta_in).detach()
    _require_log_prob(sim)
    x, w = _x_grid(sim)
    m, d = len(x), sim.theta_dim
    out = []
    for th in theta.split(max(1, PAIRS_PER_CHUNK // m)):
        k = len(th)
        log_p, t = log_prob_and_score(sim, x.repeat(k, 1), th.repeat_interleave(m, 0))
        keep = log_p > -math.inf
        t = torch.where(keep[:, None], t, torch.zeros_like(t)).reshape(k, m, d)
        p = torch.where(keep, log_p.exp(), torch.zeros_like(log_p)).reshape(k, m)
        out.append(torch.einsum("km,kmi,kmj->kij", p * w, t, t))
    info = torch.cat(out)
    return info[0] if single else info


def default_theta_grid(sim: Simulator) -> Tensor:
    """An even grid over the prior's box: 101 points for d_θ = 1, 21 × 21 for d_θ = 2: (g, d_θ)."""
    prior = sim.prior
    base = prior.base_dist if isinstance(prior, Independent) else prior
    if not isinstance(base, Uniform):
        raise ValueError(
            f"{sim.name}'s prior is not a uniform box, so there is no default θ grid: pass theta_grid (g, d_θ)."
        )
    if sim.theta_dim not in GRID_POINTS:
        raise ValueError(
            f"no default θ grid for d_θ = {sim.theta_dim} (only for 1 or 2): pass theta_grid (g, {sim.theta_dim})."
        )
    points = GRID_POINTS[sim.theta_dim]
    low, high = base.low.to(DTYPE).reshape(-1), base.high.to(DTYPE).reshape(-1)
    axes = [torch.linspace(float(lo), float(hi), points, dtype=DTYPE) for lo, hi in zip(low, high)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, sim.theta_dim)


# -- helpers ------------------------------------------------------------------------------------


def _check(estimator, sim: Simulator, method: str) -> Tensor:
    """Validates the pair at the boundary; returns θ_ref (d_θ,)."""
    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a goldmine Simulator, got {type(sim).__name__}.")
    if not callable(getattr(estimator, method, None)):
        raise TypeError(f"{type(estimator).__name__} has no {method}() method: it is not a {method} surrogate.")
    missing = [a for a in ("theta_dim_", "x_dim_", "reference_") if not hasattr(estimator, a)]
    if missing:
        raise ValueError(f"{type(estimator).__name__} lacks {missing}: fit it before evaluating it.")
    if (estimator.theta_dim_, estimator.x_dim_) != (sim.theta_dim, sim.x_dim):
        raise ValueError(
            f"the estimator was fitted on θ of shape (n, {estimator.theta_dim_}) and x of shape "
            f"(n, {estimator.x_dim_}), but {sim.name} has θ of shape (n, {sim.theta_dim}) and x of shape "
            f"(n, {sim.x_dim}): evaluate it against the simulator whose data it was trained on."
        )
    _require_log_prob(sim)
    ref = torch.as_tensor(estimator.reference_).detach().reshape(1, -1)
    return sim.check_theta(ref, "estimator.reference_")[0]


def _require_log_prob(sim: Simulator) -> None:
    if not has_exact(sim):
        raise NotImplementedError(
            f"{sim.name} has no exact likelihood log p(x|θ), which goldmine.evaluate measures errors "
            "against. Use a simulator with a tractable likelihood (GaltonBoard, Poisson, Weinberg), or "
            "judge the surrogate by calibration (coverage) instead."
        )


def _x_grid(sim: Simulator) -> tuple[Tensor, Tensor]:
    x, w = sim.x_grid()
    return sim.check_x(x, "x_grid nodes").detach(), torch.as_tensor(w, dtype=DTYPE).reshape(-1)


def _log_prob(sim: Simulator, x: Tensor, theta: Tensor) -> Tensor:
    try:
        with torch.no_grad():
            return sim.log_prob(x, theta).to(DTYPE)
    except NotImplementedError as err:
        raise NotImplementedError(f"goldmine.evaluate needs the exact likelihood of {sim.name}: {err}") from None


def log_prob_and_score(sim: Simulator, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
    """log p(x|θ) (n,) and ∇_θ log p(x|θ) (n, d_θ) for x (n, x_dim) and θ (n, d_θ), by autograd; each
    row's θ is its own leaf."""
    theta = theta.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            log_p = sim.log_prob(x, theta)
            # rows where p = 0 give NaN gradients; they only touch their own row, masked later
            (grad,) = torch.autograd.grad(log_p.sum(), theta)
    except NotImplementedError as err:
        raise NotImplementedError(f"goldmine.evaluate needs the exact likelihood of {sim.name}: {err}") from None
    return log_p.detach().to(DTYPE), grad.to(DTYPE)


def _as_rows(out, n: int, tail: tuple, method: str) -> Tensor:
    out = torch.as_tensor(out).detach().to("cpu", DTYPE)  # from the estimator's device
    if out.shape == (n, 1) and tail == ():
        out = out[:, 0]
    if out.shape != (n, *tail):
        raise ValueError(
            f"the estimator's {method}() returned shape {tuple(out.shape)} for {n} rows; expected {(n, *tail)}."
        )
    return out


# -- posteriors ---------------------------------------------------------------------------------

C2ST_FOLDS = 5
GRID_POSTERIOR_POINTS = {1: 10_000, 2: 200, 3: 40}  # cells per dimension, by d_θ
GRID_POSTERIOR_MAX_CELLS = 10_000_000


def c2st(samples_p, samples_q, seed: int = 0, hidden: int = 32, steps: int = 200) -> float:
    """The classifier two-sample test: how well a classifier tells samples of p from samples of q.

    A two-hidden-layer MLP is trained (full batch, Adam, `steps` steps) to tell the two samples
    apart; its accuracy on held-out rows, by 5-fold cross-validation on the pooled, standardised
    samples, is the statistic: 0.5 when p = q (up to noise of order 1/√(2n)), 1 when the two do not
    overlap. Symmetric in p and q; needs no density, only samples.

    Arguments:
        samples_p, samples_q: (n, d) each, the same n ≥ 10 (so that chance level is 0.5).
        seed: seeds the folds and the classifiers' initialisation (torch's global RNG is left alone).
        hidden: the width of the hidden layers.
        steps: optimisation steps per fold.

    Returns:
        The mean held-out accuracy over the folds.

    References:
        Lopez-Paz, Oquab, "Revisiting classifier two-sample tests", ICLR 2017,
        https://arxiv.org/abs/1610.06545

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> round(c2st(torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 5), 2)
        1.0
    """
    p = torch.as_tensor(samples_p, dtype=torch.float32)
    q = torch.as_tensor(samples_q, dtype=torch.float32)
    p, q = (s[:, None] if s.ndim == 1 else s for s in (p, q))
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"samples_p and samples_q must be (n, d) with the same d; got {tuple(p.shape)} and "
                         f"{tuple(q.shape)}.")
    if len(p) != len(q) or len(p) < 2 * C2ST_FOLDS:
        raise ValueError(f"c2st needs the same number n ≥ {2 * C2ST_FOLDS} of samples from each distribution "
                         f"(then chance is 0.5); got {len(p)} and {len(q)}. Subsample the larger one.")
    if not (torch.isfinite(p).all() and torch.isfinite(q).all()):
        raise ValueError("the samples hold NaN or infinite values.")
    data = torch.cat([p, q])
    std = data.std(0)
    data = (data - data.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    labels = torch.cat([torch.zeros(len(p)), torch.ones(len(q))])
    generator = torch.Generator().manual_seed(seed)
    folds = torch.randperm(len(data), generator=generator).chunk(C2ST_FOLDS)
    accuracies = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for k, test in enumerate(folds):
            train = torch.cat([f for j, f in enumerate(folds) if j != k])
            d = data.shape[1]
            net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
                                      torch.nn.SiLU(), torch.nn.Linear(hidden, 1))
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
            for _ in range(steps):
                optimizer.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(data[train])[:, 0], labels[train])
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                predicted = (net(data[test])[:, 0] > 0).float()
            accuracies.append(float((predicted == labels[test]).float().mean()))
    return float(sum(accuracies) / len(accuracies))


def grid_posterior_samples(sim: Simulator, x_obs, n: int, grid_points: int | None = None,
                           generator: torch.Generator | None = None) -> Tensor:
    """Draws of the exact posterior p(θ|x_1..x_m) ∝ Π_i p(x_i|θ) under the simulator's uniform (box) prior.

    The box is cut into g^d equal cells; the log-posterior Σ_i log p(x_i|θ) is evaluated at every
    cell's centre, a cell is drawn with probability proportional to its posterior mass (the centre
    density times the cell volume, the midpoint rule) and θ is drawn uniformly within it. The
    draws follow the posterior up to the density's variation across one cell.

    Arguments:
        sim: a simulator with an exact `log_prob` and a uniform box prior.
        x_obs: i.i.d. observations (m, x_dim) (or (m,) for x_dim = 1).
        n: the number of draws.
        grid_points: cells per θ dimension; 10000 for d_θ = 1, 200 (×200) for 2, 40 for 3.
        generator: the source of randomness.

    Returns:
        (n, d_θ) float64.

    Example:
        >>> from goldmine.simulators import Weinberg
        >>> grid_posterior_samples(Weinberg(), torch.tensor([[0.5], [0.8]]), 3).shape
        torch.Size([3, 2])
    """
    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a goldmine Simulator, got {type(sim).__name__}.")
    _require_log_prob(sim)
    x = sim.check_x(x_obs, "x_obs").detach()
    if len(x) == 0 or not torch.isfinite(x).all():
        raise ValueError(f"x_obs must hold at least one finite observation; got {x.tolist()}.")
    n = checks.positive_int(n, "n")
    base = sim.prior.base_dist if isinstance(sim.prior, Independent) else sim.prior
    if not isinstance(base, Uniform):
        raise ValueError(f"{sim.name}'s prior is not a uniform box: grid_posterior_samples needs one.")
    d = sim.theta_dim
    g = GRID_POSTERIOR_POINTS.get(d) if grid_points is None else grid_points
    if g is None:
        raise ValueError(f"no default grid for d_θ = {d}: pass grid_points (cells per dimension).")
    g = checks.positive_int(g, "grid_points")
    if g**d > GRID_POSTERIOR_MAX_CELLS:
        raise ValueError(f"grid_points^{d} must be at most {GRID_POSTERIOR_MAX_CELLS} cells; got grid_points={g}.")
    low, high = base.low.to(DTYPE).reshape(-1), base.high.to(DTYPE).reshape(-1)
    width = (high - low) / g
    axes = [lo + (torch.arange(g, dtype=DTYPE) + 0.5) * w for lo, w in zip(low, width)]
    centres = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, d)
    log_post = torch.zeros(len(centres), dtype=DTYPE)
    for lo in range(0, len(centres), max(1, PAIRS_PER_CHUNK // len(x))):
        th = centres[lo : lo + max(1, PAIRS_PER_CHUNK // len(x))]
        log_p = _log_prob(sim, x.repeat(len(th), 1), th.repeat_interleave(len(x), 0))
        log_post[lo : lo + len(th)] = log_p.reshape(len(th), len(x)).sum(1)
    if not torch.isfinite(log_post.max()):
        raise ValueError("the observations have zero likelihood (or a non-finite one) everywhere on the prior's "
                         "box: they cannot come from this simulator.")
    cells = torch.multinomial(torch.softmax(log_post, 0), n, replacement=True, generator=generator)
    return centres[cells] + (torch.rand(n, d, dtype=DTYPE, generator=generator) - 0.5) * width


__all__ = ["log_ratio_error", "score_error", "exact_fisher_information", "default_theta_grid", "THRESHOLD",
           "log_prob_and_score", "c2st", "grid_posterior_samples"]
