"""ALFI: a recurrent machine, meta-trained across inference problems, that moves a proposal over θ.

A Gaussian proposal q(θ|ψ) = N(μ, diag σ²), ψ = (μ, log σ), lives in standardised θ units. Given
observations x_obs = {x_i}_{i=1..n} it starts at ψ_0 = (μ_0, log σ_0) (μ_0 a prior draw or the
prior mean) and for t = 0..T−1

    θ_k ~ q(θ|ψ_t), k = 1..K;   x_kj ~ p(x|θ_k), j = 1..M                       (K·M simulator runs)
    e_obs = mean_i φ(x_i),   e_k = mean_j φ(x_kj)                                (φ: MLP, tanh output)
                             (φ(x) = MLP(e(x̃)) with an embedding network e, `embedding=`)
    g_k = ∇_ψ log q(θ_k|ψ_t), standardised over the K draws
    a_t = mean_k ρ(e_obs, e_k, θ_k, g_k)                                         (ρ: MLP, tanh output)
    (Δψ_t, h_{t+1}) = GRU(a_t, ψ_t, h_t),   Δψ_t ∈ (−b, b)
    ψ_{t+1} = ψ_t + Δψ_t

The machine never evaluates a likelihood or a hand-made distance between x_obs and the simulations:
it learns what to compare. Meta-training draws problems θ* ~ p(θ), x_obs ~ p(x|θ*)^n and
minimises, by back-propagation through the T steps,

    L = E_{θ*, x_obs} Σ_{t=1..T} w_t · (−log q(θ*|ψ_t)),    w_t ∝ exp(β·t/T) − 1,

weights that grow over the steps (early steps may explore, the last ones must be right). The
simulator is only sampled: the draws θ_k and the runs x_kj enter as data, without gradient (as in
the paper), so any black-box simulator works. Draws outside the prior's bounds are clamped onto
them, unless the simulator is defined there.

Defaults follow the paper's Weinberg experiment (its code, artix41/ALFI-pytorch,
configs/weinberg.yaml): T = 15 steps, K = 8 draws, M = 64 runs per draw, n = 500 observations per
problem, 1000 problems, meta-batches of 16 problems, 130 epochs, learning rate 2·10⁻⁴, hidden
layers of 50 units, encodings of 60, a GRU state of 40, |Δψ| < 0.2, β = 3, μ_0 drawn from the
prior. Deviations, each chosen by a comparison on Poisson (benchmarks/README.md, "Measurements
behind the defaults"):

- σ_0 = 1 (the prior's spread in standardised units) instead of the paper's 0.1: from σ_0 = 0.1
  meta-training stalled (the machine widened σ at every step and barely moved μ), from σ_0 = 1 it
  learns at once;
- x is standardised by its quantiles, x_j → Φ⁻¹(F̂_j(x_j)) with F̂_j the empirical CDF of the
  meta-training observations (`standardize="quantile"`), instead of by mean and standard deviation
  (`"affine"`, the paper's): μ_T comes much closer to the exact MLE, because Poisson counts at low
  rates are squeezed into a sliver of the affine scale;
- the last layer of the update starts at zero (an untrained machine stays put); smooth SiLU
  activations instead of ReLU; a smooth bound b·tanh instead of clipping; AdamW with the Trainer's
  cosine schedule instead of constant-rate Adam; w_t on the grid t/T (the paper's code spaces it
  from 0, giving ψ_1 no weight).

x of more axes (images, series, sets; the simulator's `x_shape`) is read through an embedding network e
(`embedding=`, a built-in of `goldmine.embeddings` or a module of the user's) trained jointly with the
machine: φ(x) = MLP(e(x̃)), x̃ standardised as the embedding asks (one mean and standard deviation per
channel of an image, for the cnn) rather than by quantiles per component.

θ is standardised by the mean and standard deviation of the meta-training problems' θ*. All
statistics come from the meta-training problems, prior-predictive draws, and are saved with the
weights.

References:
    Pesah, Wehenkel, Louppe, "Recurrent machines for likelihood-free inference", NeurIPS 2018
    workshop on meta-learning, https://arxiv.org/abs/1811.12932
    Putzky, Welling, "Recurrent inference machines for solving inverse problems",
    https://arxiv.org/abs/1706.04008
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import checks
from ..checks import warn_outside_training
from ..embeddings import embedding_record, embedding_spec, x_input
from ..nn import Standardize, check_activation, mlp
from ..simulators.base import DTYPE, Simulator, draw_prior, seed_from, shape_of_x
from ..simulators.describe import describe, rebuild
from .base import Estimator, register
from .registry import Method, register_method

#: the paper's meta-training settings, where they differ from the Trainer's defaults
PAPER_TRAINING = {"epochs": 130, "batch_size": 16, "lr": 2e-4}
#: problems per forward pass when evaluating without gradients (bounds the memory of a pass)
EVAL_CHUNK = 64
#: order statistics kept by the quantile standardisation of x
KNOTS = 4096
__all__ = ["ALFI", "ALFIResult"]


@dataclass
class ALFIResult:
    """The trajectory of the proposal and the final estimate, in the units of θ.

    With observations of one problem (n, x_dim) the leading problem dimension P is absent.

    Attributes:
        mu: proposal means μ_0..μ_T, (P, T + 1, theta_dim).
        log_sigma: proposal log standard deviations, (P, T + 1, theta_dim).
        theta: the estimate μ_T, clamped into the prior's bounds, (P, theta_dim).
        sigma: σ_T, (P, theta_dim).
        simulator_calls: simulator runs per problem (T·K·M).
    """

    mu: Tensor
    log_sigma: Tensor
    theta: Tensor
    sigma: Tensor
    simulator_calls: int

    @property
    def psi(self) -> Tensor:
        """ψ_t = (μ_t, log σ_t): (P, T + 1, 2, theta_dim)."""
        return torch.stack([self.mu, self.log_sigma], dim=-2)


class Gaussianize(nn.Module):
    """z = Φ⁻¹(F̂(x)) per component, F̂ the empirical CDF of a reference sample (its sorted values,
    `knots`), with mid-ranks at ties and linear interpolation between knots; z is clipped at the
    sample's extreme ranks. A monotone map that makes each component of x about standard normal."""

    def __init__(self, dim: int, knots: int):
        super().__init__()
        self.register_buffer("knots", torch.zeros(dim, knots, dtype=DTYPE))

    @torch.no_grad()
    def fit(self, batches) -> Gaussianize:
        """Learns the knots, evenly spaced order statistics, from an iterable of (rows_i, dim) tensors."""
        x = torch.cat(list(batches))
        if len(x) == 0:
            raise ValueError("no finite x to learn the quantile standardisation from.")
        ranks = torch.linspace(0, len(x) - 1, self.knots.shape[1]).round().long()
        self.knots.copy_(x.to(DTYPE).sort(0).values[ranks].T)
        return self

    def forward(self, x: Tensor) -> Tensor:
        shape, n = x.shape, self.knots.shape[1]
        v = x.reshape(-1, shape[-1]).to(DTYPE).T.contiguous()  # (dim, rows)
        left = torch.searchsorted(self.knots, v, side="left")
        right = torch.searchsorted(self.knots, v, side="right")
        below = self.knots.gather(1, (left - 1).clamp(0, n - 1))
        above = self.knots.gather(1, left.clamp(0, n - 1))
        gap = (above - below).clamp(min=1e-300)
        inside = (left == right) & (left > 0) & (left < n)
        rank = torch.where(inside, left - 0.5 + (v - below) / gap, (left + right) / 2.0)
        u = (rank / n).clamp(0.5 / n, 1 - 0.5 / n)
        return torch.special.ndtri(u).T.reshape(shape)


class ALFINetwork(nn.Module):
    """The encoder φ, the aggregator ρ and the recurrent update, on standardised θ and x."""

    def __init__(self, theta_dim: int, x_dim: int, hidden: int, features: int, state: int, bound: float,
                 activation: str, standardize: str, embedding=None, x_shape: tuple[int, ...] | None = None):
        super().__init__()
        d = theta_dim
        self.bound = bound
        self.x_shape = tuple(x_shape or (x_dim,))
        if embedding is None:
            self.x_norm = Standardize(x_dim) if standardize == "affine" else Gaussianize(x_dim, KNOTS)
            self.embedding, width = None, x_dim
        else:  # the standardisation the embedding asks for, the embedding network and its features
            self.x_norm, self.embedding, width = x_input(embedding, x_dim, self.x_shape)
        self.theta_norm = Standardize(theta_dim)
        # the prior's bounds in θ units (±inf where unbounded): proposal draws are clamped onto them
        self.register_buffer("low", torch.full((d,), -math.inf, dtype=DTYPE))
        self.register_buffer("high", torch.full((d,), math.inf, dtype=DTYPE))
        self.encoder = mlp(width, features, (hidden, hidden), activation)
        self.aggregator = mlp(2 * features + 3 * d, features, (hidden, hidden), activation)
        self.into = mlp(features + 2 * d, hidden, (hidden,), activation)
        self.cell = nn.GRUCell(hidden, state)
        self.out = mlp(state, 2 * d, (hidden,), activation)
        self.state = state
        # an untrained machine leaves the proposal where it is, rather than sending it off at random
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def encode(self, x: Tensor) -> Tensor:
        """The permutation-invariant summary of a set of runs: (..., runs, x_dim) → (..., features), each x flat
        (reshaped to x_shape for an embedding network).

        Runs with a non-finite x (a simulator's failed runs) are left out of the mean."""
        valid = torch.isfinite(x).all(-1, keepdim=True)
        x = torch.where(valid, x, 0.0)
        if self.embedding is None:
            s = self.x_norm(x).float()
        else:
            s = self.embedding(self.x_norm(x.reshape(-1, *self.x_shape).float())).reshape(*x.shape[:-1], -1)
        codes = torch.tanh(self.encoder(s)) * valid
        return codes.sum(-2) / valid.sum(-2).clamp(min=1)

    def fit_x(self, rows: Tensor) -> None:
        """Learns the standardisation of x from finite rows (N, x_dim)."""
        if self.embedding is None or isinstance(self.x_norm, Gaussianize):
            self.x_norm.fit([rows])
        else:
            self.x_norm.fit([rows.reshape(-1, *self.x_shape).float()])

    def step(self, e_obs: Tensor, e_sim: Tensor, v: Tensor, score: Tensor, psi: Tensor, h: Tensor):
        """One update. e_obs (B, F), e_sim (B, K, F), v (B, K, d) standardised draws, score (B, K, 2d),
        ψ (B, 2d), h (B, state) → Δψ (B, 2d), h (B, state)."""
        k = e_sim.shape[1]
        parts = torch.cat([e_obs[:, None].expand(-1, k, -1), e_sim, v.float(), score.float()], dim=-1)
        summary = torch.tanh(self.aggregator(parts)).mean(1)
        h = self.cell(self.into(torch.cat([summary, psi.float()], dim=-1)), h)
        return self.bound * torch.tanh(self.out(h)), h


class Problems:
    """Meta-training problems (θ*, x_obs) in memory: a row source of the Trainer (`goldmine.training.RowSource`).

    Row i is one problem: its field "theta" is θ*_i (theta_dim,), its field "x" the observations
    x_obs_i (n_obs, x_dim), in which a simulator's failed run may be NaN. Problems have no labels.
    """

    def __init__(self, theta: Tensor, x: Tensor):
        self.theta, self.x = theta, x

    def __len__(self) -> int:
        return len(self.theta)

    def __str__(self) -> str:
        return f"the {len(self)} meta-training problems"

    def split(self, validation: float) -> tuple[Problems, Problems]:
        """The first problems train, the last `validation` fraction of them validate."""
        cut = round(len(self) * (1 - validation))
        if not 0 < cut < len(self):
            raise ValueError(f"{len(self)} problems are too few to hold out a validation fraction of {validation}.")
        return Problems(self.theta[:cut], self.x[:cut]), Problems(self.theta[cut:], self.x[cut:])

    def tensors(self, fields, label: int | None = None) -> dict[str, Tensor]:
        """{field: tensor} for "theta" and "x"; problems have no labels, so `label` must be None."""
        if label is not None:
            raise ValueError("meta-training problems have no labels: train on all of them (label=None).")
        table = {"theta": self.theta, "x": self.x}
        unknown = [k for k in fields if k not in table]
        if unknown:
            raise ValueError(f"meta-training problems have the fields theta and x; asked for {unknown}.")
        return {k: table[k] for k in fields}


def _bounds(sim: Simulator) -> tuple[Tensor, Tensor]:
    """Where proposal draws must stay: the prior's bounds (±inf where it has none, or everywhere when
    the simulator runs outside its prior)."""
    d = sim.theta_dim
    low, high = torch.full((d,), -math.inf, dtype=DTYPE), torch.full((d,), math.inf, dtype=DTYPE)
    if sim.defined_outside_prior:
        return low, high
    support = sim.prior.support
    while hasattr(support, "base_constraint"):
        support = support.base_constraint
    lo, hi = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
    if lo is not None:
        low = torch.as_tensor(lo, dtype=DTYPE).expand(d).clone()
    if hi is not None:
        high = torch.as_tensor(hi, dtype=DTYPE).expand(d).clone()
    return low, high


def _prior_draws(sim: Simulator, n: int, generator: torch.Generator) -> Tensor:
    """n draws of the prior, (n, theta_dim), reproducible from `generator` (priors use the global RNG)."""
    return draw_prior(sim.prior, n, seed=seed_from(generator))


@register
class ALFI(Estimator):
    """Automatic likelihood-free inference: a recurrent machine that moves a Gaussian proposal over θ.

    Arguments:
        steps: T, the updates of the proposal.
        thetas: K, the proposal draws per step.
        runs: M, the simulator runs per draw.
        n_obs: n, the observed runs of each meta-training problem.
        problems: the meta-training problems (θ* ~ prior); the Trainer's `validation` fraction of
            them is held out for the validation loss.
        sigma: σ_0 of the initial proposal, in standardised θ units.
        init: "prior" (μ_0 a prior draw, as in the paper) or "mean" (μ_0 the prior's mean).
        bound: b, the bound on every component of Δψ.
        beta: β of the step weights w_t ∝ exp(β·t/T) − 1.
        hidden: units of the hidden layers.
        features: width of the encodings of x and of the aggregate over the draws.
        state: the size of the GRU state.
        activation: a smooth activation (silu, tanh, elu, gelu, softplus).
        standardize: how x is standardised: "quantile" (Φ⁻¹ of the empirical CDF per component) or
            "affine" (mean and standard deviation, the paper's). None (the default): "quantile", or with an
            embedding "affine", as the embedding asks (per channel of an image for the cnn).
        embedding: a network e that summarises each x first, trained with the machine (φ(x) = MLP(e(x̃))):
            a built-in by name or a dict of its name and settings, or a torch.nn.Module
            (`goldmine.embeddings`); for x of more axes such as images. None: x itself, flattened.
        **training: settings of the `goldmine.training.Trainer`; `batch_size` counts problems per
            meta-batch and `epochs` passes over the problems. Unset ones take the paper's values:
            epochs=130, batch_size=16, lr=2e-4.

    Attributes (after fit):
        theta_dim_, x_dim_, reference_, x_low_ and x_high_ (the range of the meta-training observations;
        `infer` warns beyond it), simulator_ (the simulator fitted on; not saved),
        simulator_info_ (its name, class and config, saved), history_ (the Trainer's history, with
        `simulator_calls` of meta-training).

    Saving: `save(folder)` writes the weights, the standardisation and the simulator's class and
    config; `gm.load(folder)` rebuilds the machine, and `infer` rebuilds a built-in simulator from
    that record. Any other simulator (black boxes, Pyro models) is passed to `infer` again.

    Example:
        >>> import goldmine as gm
        >>> sim = gm.simulators.Poisson()
        >>> alfi = ALFI(steps=3, thetas=2, runs=4, n_obs=10, problems=20, epochs=1, progress=False).fit(sim)
        >>> x_obs = sim.sample(torch.full((10, 1), 2.0), generator=torch.Generator().manual_seed(1)).x
        >>> result = alfi.infer(x_obs)
        >>> result.mu.shape, result.theta.shape, result.simulator_calls
        (torch.Size([4, 1]), torch.Size([1]), 24)
    """

    def __init__(self, steps: int = 15, thetas: int = 8, runs: int = 64, n_obs: int = 500, problems: int = 1000,
                 sigma: float = 1.0, init: str = "prior", bound: float = 0.2, beta: float = 3.0, hidden: int = 50,
                 features: int = 60, state: int = 40, activation: str = "silu", standardize: str | None = None,
                 embedding=None, **training):
        for name, value in (("steps", steps), ("thetas", thetas), ("runs", runs), ("n_obs", n_obs),
                            ("problems", problems), ("hidden", hidden), ("features", features), ("state", state)):
            checks.positive_int(value, name)
        for name, value in (("sigma", sigma), ("bound", bound)):
            checks.positive_float(value, name)
        checks.finite(beta, "beta")
        if init not in ("prior", "mean"):
            raise ValueError(f"init must be 'prior' (a prior draw) or 'mean' (the prior's mean); got {init!r}.")
        check_activation(activation)
        if standardize not in (None, "affine", "quantile"):
            raise ValueError(f"standardize must be 'affine' or 'quantile'; got {standardize!r}.")
        self.embedding = embedding_spec(embedding)
        if self.embedding is not None and standardize == "quantile":
            raise ValueError("standardize='quantile' maps each component of a flat x by its own quantiles, which an "
                             "embedding network does not read: with embedding=, x is standardised as the embedding "
                             "asks; drop standardize= (or give 'affine').")
        standardize = standardize or ("quantile" if self.embedding is None else "affine")
        super().__init__(**{**PAPER_TRAINING, **training})
        validation = self.trainer.validation
        if not 0 < round(problems * (1 - validation)) < problems:
            raise ValueError(f"problems={problems} are too few to hold out a validation fraction of {validation}: "
                             "give more problems, or another validation fraction.")
        self.steps, self.thetas, self.runs, self.n_obs, self.problems = steps, thetas, runs, n_obs, problems
        self.sigma, self.init, self.bound, self.beta = float(sigma), init, float(bound), float(beta)
        self.hidden, self.features, self.state, self.activation = hidden, features, state, activation
        self.standardize = standardize
        self.params = {"steps": steps, "thetas": thetas, "runs": runs, "n_obs": n_obs, "problems": problems,
                       "sigma": self.sigma, "init": init, "bound": self.bound, "beta": self.beta, "hidden": hidden,
                       "features": features, "state": state, "activation": activation,
                       "standardize": standardize}
        if self.embedding is not None:
            self.params["embedding"] = embedding_record(self.embedding)
        self.simulator_: Simulator | None = None
        self.simulator_info_: dict | None = None
        self._calls = 0  # simulator runs drawn so far by fit

    def _build(self, theta_dim: int, x_dim: int) -> ALFINetwork:
        return ALFINetwork(theta_dim, x_dim, self.hidden, self.features, self.state, self.bound, self.activation,
                           self.standardize, self.embedding, self.x_shape_)

    # -- the machine ---------------------------------------------------------------------------

    def step_weights(self) -> Tensor:
        """w_1..w_T ∝ exp(β·t/T) − 1, summing to one (uniform for β = 0): (T,)."""
        u = torch.arange(1, self.steps + 1, dtype=DTYPE) / self.steps
        w = torch.expm1(self.beta * u) if self.beta != 0 else torch.ones_like(u)
        return w / w.sum()

    def _start(self, net: ALFINetwork, sim: Simulator, problems: int, generator: torch.Generator,
               init: str) -> Tensor:
        """ψ_0 (B, 2, d) in standardised units."""
        if init == "prior":
            mu = _prior_draws(sim, problems, generator)
        else:
            mu = sim.prior.mean.to(DTYPE).reshape(1, -1).expand(problems, -1)
        mu = net.theta_norm(mu.float()).double()
        return torch.stack([mu, torch.full_like(mu, math.log(self.sigma))], dim=1)

    def _unroll(self, net: ALFINetwork, sim: Simulator, x_obs: Tensor, psi: Tensor,
                generator: torch.Generator) -> Tensor:
        """Runs the T steps for B problems: x_obs (B, n, x_dim), ψ_0 (B, 2, d) → ψ_0..ψ_T (B, T + 1, 2, d).

        Differentiable in the network's weights; the draws and the runs carry no gradient.
        """
        b, d = psi.shape[0], psi.shape[2]
        k, m = self.thetas, self.runs
        mean, std = net.theta_norm.mean.double(), net.theta_norm.std.double()
        e_obs = net.encode(x_obs)
        h = torch.zeros(b, net.state)
        psi = psi.float()
        trajectory = [psi]
        for _ in range(self.steps):
            mu, log_sigma = psi[:, 0], psi[:, 1]
            draw = mu.detach().double()[:, None] + log_sigma.detach().double().exp()[:, None] * torch.randn(
                b, k, d, generator=generator, dtype=DTYPE)
            theta = torch.maximum(torch.minimum(draw * std + mean, net.high), net.low)
            x = sim.sample(theta.reshape(b * k, d).repeat_interleave(m, dim=0), generator=generator).x
            self._calls += b * k * m
            v = ((theta - mean) / std).float()
            # ∇_ψ log q(θ_k|ψ), standardised over the K draws of each problem
            z = (v - mu[:, None]) / log_sigma.exp()[:, None]
            score = torch.cat([z / log_sigma.exp()[:, None], z**2 - 1], dim=-1)
            score = (score - score.mean(1, keepdim=True)) / score.std(1, unbiased=False, keepdim=True).clamp(min=1e-6)
            e_sim = net.encode(x.reshape(b, k, m, -1))
            delta, h = net.step(e_obs, e_sim, v, score, psi.reshape(b, 2 * d), h)
            psi = psi + delta.reshape(b, 2, d)
            trajectory.append(psi)
        return torch.stack(trajectory, dim=1)

    def _loss(self, trajectory: Tensor, theta_star: Tensor, net: ALFINetwork) -> Tensor:
        """Σ_t w_t · (−log q(θ*|ψ_t)) averaged over the problems; θ* (B, d) in θ units."""
        v = net.theta_norm(theta_star.float())[:, None]
        mu, log_sigma = trajectory[:, 1:, 0], trajectory[:, 1:, 1]
        nll = (log_sigma + 0.5 * ((v - mu) / log_sigma.exp()) ** 2).sum(-1) + 0.5 * v.shape[-1] * math.log(2 * math.pi)
        return (nll * self.step_weights().float()).sum(1).mean()

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, simulator: Simulator) -> ALFI:
        """Meta-trains the machine on problems drawn from `simulator` and its prior; returns self.

        Every simulator call of a meta-batch (K·M runs of each of its B problems) is one
        `simulator.sample` call per step. The history counts the simulator runs in
        `history_["simulator_calls"]` (observations and proposals).
        """
        sim = self._check_simulator(simulator, fitted=False)
        trainer = self.trainer
        generator = torch.Generator().manual_seed(trainer.seed)
        theta_star = _prior_draws(sim, self.problems, generator)
        x_obs = sim.sample(theta_star.repeat_interleave(self.n_obs, dim=0), generator=generator).x
        x_obs = x_obs.reshape(self.problems, self.n_obs, sim.x_dim)
        self._calls = self.problems * self.n_obs

        self.theta_dim_, self.x_dim_ = sim.theta_dim, sim.x_dim
        self.x_shape_ = shape_of_x(sim)
        self.reference_ = torch.as_tensor(sim.reference, dtype=DTYPE).reshape(-1).clone()
        torch.manual_seed(trainer.seed)
        net = self.network_ = self._build(sim.theta_dim, sim.x_dim)
        net.theta_norm.fit([theta_star])
        rows = x_obs.reshape(-1, sim.x_dim)
        rows = rows[torch.isfinite(rows).all(1)]
        net.fit_x(rows)
        if len(rows) and len(self.x_shape_) == 1:  # images have no range per element worth a warning
            self.x_low_, self.x_high_ = rows.amin(0).to(DTYPE), rows.amax(0).to(DTYPE)
        net.low.copy_(_bounds(sim)[0])
        net.high.copy_(_bounds(sim)[1])
        self.simulator_, self.simulator_info_ = sim, describe(sim)

        train_generator = torch.Generator().manual_seed(trainer.seed * 100_003 + 1)

        def loss(network: ALFINetwork, batch: dict[str, Tensor]) -> Tensor:
            psi = self._start(network, sim, len(batch["x"]), train_generator, self.init)
            return self._loss(self._unroll(network, sim, batch["x"], psi, train_generator), batch["theta"], network)

        def validation_loss(network: ALFINetwork, batch: dict[str, Tensor]) -> Tensor:
            # the same draws at every validation, so that epochs compare on common random numbers
            fixed = torch.Generator().manual_seed(trainer.seed * 100_003 + 2)
            total = torch.zeros(())
            with torch.no_grad():
                for lo in range(0, len(batch["x"]), EVAL_CHUNK):
                    x, theta = batch["x"][lo:lo + EVAL_CHUNK], batch["theta"][lo:lo + EVAL_CHUNK]
                    psi = self._start(network, sim, len(x), fixed, self.init)
                    total = total + self._loss(self._unroll(network, sim, x, psi, fixed), theta, network) * len(x)
            return total / len(batch["x"])

        # a failed run's NaN in x_obs is left out by the encoder, so only θ* must be finite
        history = trainer.fit(net, loss, Problems(theta_star, x_obs), ("theta", "x"), desc="alfi",
                              val_loss=validation_loss, finite=("theta",))
        history["simulator_calls"] = self._calls
        self.history_ = history
        return self

    def _check_simulator(self, simulator, fitted: bool = True) -> Simulator:
        """The simulator, checked to be one and, with `fitted`, to match the machine's dimensions."""
        if not isinstance(simulator, Simulator):
            raise TypeError(f"ALFI needs a goldmine Simulator (gm.simulators.*, BlackBoxSimulator or "
                            f"PyroSimulator); got {type(simulator).__name__}.")
        if fitted and (simulator.theta_dim, simulator.x_dim) != (self.theta_dim_, self.x_dim_):
            raise ValueError(
                f"the simulator {simulator.name} has θ of dimension {simulator.theta_dim} and x of dimension "
                f"{simulator.x_dim}, but this ALFI machine was meta-trained for θ of dimension {self.theta_dim_} "
                f"and x of dimension {self.x_dim_}: pass the simulator it was fitted on."
            )
        if fitted and len(self.x_shape_ or ()) > 1 and shape_of_x(simulator) != self.x_shape_:
            raise ValueError(
                f"the simulator {simulator.name} draws x of shape {shape_of_x(simulator)}, but this ALFI machine was "
                f"meta-trained on x of shape {self.x_shape_}: pass the simulator it was fitted on."
            )
        return simulator

    # -- inference -----------------------------------------------------------------------------

    def infer(self, x_obs, simulator: Simulator | None = None, seed: int = 0, init: str | None = None) -> ALFIResult:
        """Runs the machine on observations and returns the trajectory and the final estimate.

        Arguments:
            x_obs: the observed runs of one problem (n, x_dim), or of P problems at once (P, n, x_dim);
                a vector is n scalar observations when x_dim = 1. x of more axes (the simulator's x_shape,
                e.g. images) as (n, *x_shape) or (P, n, *x_shape).
            simulator: the simulator to run; by default the one fitted on, or for a loaded machine
                the built-in simulator rebuilt from its saved class and config.
            seed: seeds the proposal draws and the simulator.
            init: "prior" or "mean"; the constructor's `init` by default.

        Returns:
            An `ALFIResult`; each problem costs T·K·M simulator runs.
        """
        net = self._check_fitted()
        sim = self._check_simulator(self._simulator(simulator))
        init = self.init if init is None else init
        if init not in ("prior", "mean"):
            raise ValueError(f"init must be 'prior' or 'mean'; got {init!r}.")
        x, single = self._check_observations(x_obs)
        warn_outside_training(self, x.reshape(-1, self.x_dim_))
        generator = torch.Generator().manual_seed(seed)
        net.eval()
        parts = []
        with torch.no_grad():
            for lo in range(0, len(x), EVAL_CHUNK):
                chunk = x[lo:lo + EVAL_CHUNK]
                psi = self._start(net, sim, len(chunk), generator, init)
                parts.append(self._unroll(net, sim, chunk, psi, generator).double())
        psi = torch.cat(parts)
        mean, std = net.theta_norm.mean.double(), net.theta_norm.std.double()
        mu, log_sigma = psi[:, :, 0] * std + mean, psi[:, :, 1] + std.log()
        theta = torch.maximum(torch.minimum(mu[:, -1], net.high), net.low)
        result = ALFIResult(mu, log_sigma, theta, log_sigma[:, -1].exp(), self.steps * self.thetas * self.runs)
        if single:
            result = ALFIResult(mu[0], log_sigma[0], theta[0], result.sigma[0], result.simulator_calls)
        return result

    def _check_observations(self, x_obs) -> tuple[Tensor, bool]:
        """x_obs as (P, n, x_dim) float64, and whether it held a single problem."""
        x = torch.as_tensor(x_obs).to(DTYPE)
        d, shape = self.x_dim_, tuple(self.x_shape_ or (self.x_dim_,))
        if len(shape) > 1:  # x of more axes: (n, *x_shape) or (P, n, *x_shape), each x flattened
            k = len(shape)
            if x.ndim not in (k + 1, k + 2) or tuple(x.shape[-k:]) != shape:
                raise ValueError(
                    f"x_obs must have shape (n, {', '.join(map(str, shape))}) for one problem or "
                    f"(P, n, {', '.join(map(str, shape))}) for P problems, the x_shape this machine was meta-trained "
                    f"on; got {tuple(x.shape)}."
                )
            x = x.flatten(-k)
        if x.ndim == 1:
            x = x[:, None] if d == 1 else x[None]
        single = x.ndim == 2
        if single:
            x = x[None]
        if x.ndim != 3 or x.shape[-1] != d:
            raise ValueError(
                f"x_obs must have shape (n, {d}) for one problem or (P, n, {d}) for P problems: the simulator's "
                f"x has dimension {d}; got {tuple(torch.as_tensor(x_obs).shape)}."
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x_obs is empty: pass at least one observation of shape ({d},).")
        if not torch.isfinite(x).all():
            raise ValueError("x_obs holds NaN or infinite values: drop or fix those observations.")
        return x, single

    def _simulator(self, simulator: Simulator | None) -> Simulator:
        if simulator is not None:
            return simulator
        if self.simulator_ is None:
            self.simulator_ = rebuild(self.simulator_info_ or {}, where="this ALFI machine")
        return self.simulator_

    # -- saving --------------------------------------------------------------------------------

    def _fitted_record(self) -> dict:
        """The estimator's record plus the simulator's (name, class and config), which `infer` rebuilds."""
        return {**super()._fitted_record(), "simulator": self.simulator_info_}

    @classmethod
    def _restore(cls, config: dict, state: dict[str, Tensor]) -> ALFI:
        est = super()._restore(config, state)
        info = config["fitted"]["simulator"]
        if info is not None and "class" in info:  # the record of machines saved before describe(): name, class, config
            info = {"simulator": info["name"], "simulator_class": info["class"], "simulator_config": info["config"]}
        est.simulator_info_ = info
        return est


register_method(Method("alfi", "alfi", ALFI, "recurrent machine meta-learned on the simulator",
                       "Pesah, Wehenkel, Louppe, arXiv:1811.12932", from_data=False))
