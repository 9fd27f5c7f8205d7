"""The one interface that inference needs from any surrogate, and from the exact likelihood.

For i.i.d. observations x_1..x_n, every surrogate gives the log-likelihood up to a constant in θ
through its likelihood terms (`goldmine.inference.surrogate`):

    ℓ(θ) = Σ_i log r̂(x_i|θ, θ_ref)      (ratio estimators, nre, histograms)
    ℓ(θ) = Σ_i log p̂(x_i|θ)              (nle and scandal)
    ℓ(θ) = Σ_i log p(x_i|θ)              (a simulator with an exact likelihood: the truth)

so that −2 log λ(θ) = −2 (ℓ(θ) − ℓ(θ̂)) is the same computation for all of them. `Model` wraps a
surrogate (or a simulator) together with the prior, whose box bounds the MLE, the θ grids and the
posterior. A posterior learned directly (npe) is no likelihood and makes no Model:
`goldmine.inference.posterior` samples it as it is.

Example:
    >>> import goldmine as gm
    >>> model = gm.inference.Model(gm.simulators.GaltonBoard())
    >>> x_obs = torch.tensor([[14.0], [15.0], [17.0]])
    >>> model.log_likelihood(torch.tensor([[-0.5], [0.0], [0.5]]), x_obs).shape
    torch.Size([3])
"""

from __future__ import annotations

import multiprocessing

import torch
from torch import Tensor
from torch.distributions import Distribution
from tqdm.auto import tqdm

from .. import checks
from ..simulators.base import DTYPE, Simulator, box_bounds
from ..simulators.priors import check_prior, grid_box
from ..checks import warn_outside_training
from .surrogate import ExactLikelihood, likelihood_terms

#: rows evaluated in one call of the surrogate (θ points × observations)
CHUNK = 1 << 18
#: pairs per call of a simulator's exact likelihood: smaller blocks, so that its progress bar moves (a
#: simulator's log p(x|θ) is evaluated row by row, so its values do not depend on the block)
EXACT_CHUNK = 1 << 14
#: seconds a call of `Model.terms` runs before it shows a progress bar (an exact likelihood can be slow)
PROGRESS_DELAY = 2.0


class Model:
    """A surrogate, or a simulator's exact likelihood, seen as ℓ(θ) for a set of i.i.d. observations.

    Arguments:
        source: a fitted surrogate with `log_likelihood_terms(x, theta)` or `log_ratio(x, theta)`
            (every ratio, histogram and likelihood estimator; `goldmine.inference.surrogate`), or a
            `Simulator` with an exact `log_prob` (the truth, through the same code).
        prior: any torch distribution over θ with `log_prob` and `sample` (`goldmine.simulators.priors`),
            or a simulator whose prior to take. Defaults to the simulator's prior for a simulator.
            Without one, a surrogate gives ℓ(θ) and, with `bounds`, grids and the MLE; a posterior
            needs a prior.
        bounds: (low, high), the box that grids over θ and the MLE's search cover. By default the
            prior's support when bounded, else the central 99.9% of each marginal of the prior
            (`goldmine.simulators.priors.grid_box`).
        simulator: the simulator that toys are drawn from (Neyman regions, expected limits,
            coverage). Defaults to `source` when it is a simulator, or to `prior` when that is one.

    Attributes:
        kind: what the likelihood terms are: "exact", "ratio" or "likelihood" (the surrogate's `kind`).
        source: the surrogate or simulator given; surrogate: what the terms come from (the simulator
            through `ExactLikelihood`). theta_dim, x_dim.
        low, high: the prior's box (theta_dim,), or None for a prior without bounded support.
        theta_names: the names of θ's components (the simulator's `theta_names`, else θ or θ₀, θ₁, …).
        grid_low, grid_high: the box of grids and of the MLE's search (theta_dim,), or None without a
            prior and bounds.

    Raises:
        TypeError: `source` gives no likelihood (e.g. npe, whose posterior is used directly).
    """

    def __init__(self, source, prior: Distribution | Simulator | None = None, simulator: Simulator | None = None,
                 bounds=None):
        if isinstance(source, Model):
            source = source.source
        self.source = source
        if simulator is None:
            simulator = source if isinstance(source, Simulator) else prior if isinstance(prior, Simulator) else None
        self.simulator = simulator
        if isinstance(source, Simulator):
            self.surrogate = ExactLikelihood(source)
            prior = source.prior if prior is None else prior
        else:
            self.surrogate = source
        self._terms = likelihood_terms(self.surrogate)
        self.kind = getattr(self.surrogate, "kind", "ratio")
        self.theta_dim, self.x_dim = self.surrogate.theta_dim_, self.surrogate.x_dim_
        if isinstance(prior, Simulator):
            prior = prior.prior
        if prior is not None:
            check_prior(prior, what="the prior")
        if prior is not None and prior.event_shape != (self.theta_dim,):
            raise ValueError(
                f"the prior has event shape {tuple(prior.event_shape)}, but θ has dimension {self.theta_dim}: "
                f"pass a prior over ({self.theta_dim},)."
            )
        if simulator is not None and (simulator.theta_dim, simulator.x_dim) != (self.theta_dim, self.x_dim):
            raise ValueError(
                f"the simulator {simulator.name} has θ of dimension {simulator.theta_dim} and x of dimension "
                f"{simulator.x_dim}, but the model has {self.theta_dim} and {self.x_dim}: pass the simulator "
                "whose data the surrogate was trained on."
            )
        self.prior = prior
        self.low, self.high = box_bounds(prior) if prior is not None else (None, None)
        # grid_box returns `bounds` when given, so the prior is needed only without them
        no_box = prior is None and bounds is None
        self.grid_low, self.grid_high = (None, None) if no_box else grid_box(prior, bounds)
        if self.grid_low is not None and self.grid_low.shape != (self.theta_dim,):
            raise ValueError(f"bounds have {len(self.grid_low)} values each, but θ has dimension {self.theta_dim}.")
        #: the names of θ's components: the simulator's `theta_names` (or the surrogate's), else θ₀, θ₁, …
        self.theta_names = checks.theta_names(simulator if getattr(simulator, "theta_names", None) else source,
                                              self.theta_dim)
        self._warned: set = set()  # the observations warned about (outside the training range)
        #: a progress bar on evaluations of ℓ that take longer than PROGRESS_DELAY seconds (main process only)
        self.progress = True

    def __repr__(self) -> str:
        name = getattr(self.source, "name", None) or getattr(self.source, "method", type(self.source).__name__)
        return f"Model({self.kind}: {name}, θ_dim={self.theta_dim}, x_dim={self.x_dim})"

    # -- validation at the boundary ---------------------------------------------------------

    def check_x_obs(self, x_obs, warn: bool = True) -> Tensor:
        """Observations as (n, x_dim) float64 (see `check_x_obs`); x of more axes (a surrogate fitted on
        images (n, C, H, W)) is given in its shape or as flat rows, and flattened.

        With `warn`, a RuntimeWarning when some lie outside the range of x the surrogate was trained on
        (`goldmine.checks.warn_outside_training`), once per Model and set of observations.
        """
        x = check_x_obs(x_obs, self.x_dim, getattr(self.surrogate, "x_shape_", None))
        if warn:
            key = (tuple(x.shape), hash(x.detach().numpy().tobytes()))
            if key not in self._warned:
                self._warned.add(key)
                warn_outside_training(self.surrogate, x, stacklevel=3)
        return x

    def check_theta(self, theta, what: str = "theta") -> Tensor:
        """θ as (m, theta_dim) float64, inside the prior's support (shapes as in `goldmine.checks.rows`)."""
        theta = checks.rows(theta, self.theta_dim, what)
        outside = ~self.inside(theta)
        if outside.any():
            row = int(outside.nonzero()[0, 0])
            raise ValueError(
                f"{what} has {int(outside.sum())} points outside the prior's support, e.g. "
                f"{theta[row].tolist()}{self._box_text()}: keep θ inside the prior."
            )
        return theta

    def inside(self, theta: Tensor) -> Tensor:
        """Whether each row of θ (m, theta_dim) lies in the prior's support → (m,) bool."""
        if self.low is not None:
            return ((theta >= self.low) & (theta <= self.high)).all(-1)
        if self.prior is None:  # no prior: every θ
            return torch.ones(len(theta), dtype=torch.bool)
        return self.prior.support.check(theta).reshape(len(theta), -1).all(-1)

    def _box_text(self) -> str:
        return "" if self.low is None else f" (the box {self.low.tolist()} to {self.high.tolist()})"

    # -- the likelihood ----------------------------------------------------------------------

    def per_event(self, theta, x_obs) -> Tensor:
        """The likelihood terms log p̂(x_i|θ_j) + c(x_i) (log r̂, or the exact log p) for every pair:
        θ (m, d), x (n, x_dim) → (m, n)."""
        return self.terms(self.check_theta(theta), self.check_x_obs(x_obs, warn=False))

    def terms(self, theta: Tensor, x: Tensor) -> Tensor:
        """`per_event` for inputs already checked: θ (m, d), x (n, x_dim) float64 → (m, n).

        The pairs go to the surrogate in blocks of about CHUNK: a few observations with blocks of θ
        (as many as fit), many observations (toys) in blocks of x with every θ, so that a surrogate
        with `log_likelihood_table` (`goldmine.inference.surrogate`) evaluates what depends on x
        alone, such as a ratio network's reference term, once per observation.
        """
        m, n = len(theta), len(x)
        out = torch.empty(m, n, dtype=DTYPE)
        table = getattr(self.surrogate, "log_likelihood_table", None)
        chunk = EXACT_CHUNK if self.kind == "exact" else CHUNK
        if n <= chunk // 64:  # blocks of θ with every x
            t_step, x_step = max(1, chunk // n), n
        else:  # blocks of x with every θ
            x_step = max(1, chunk // m)
            t_step = min(m, max(1, chunk // x_step))
        show = self.progress and multiprocessing.parent_process() is None and -(-m // t_step) * -(-n // x_step) > 1
        bar = tqdm(total=m * n, unit="pairs", unit_scale=True, desc=f"ℓ(θ) {self.kind}", delay=PROGRESS_DELAY,
                   leave=False, disable=not show, dynamic_ncols=True)
        with torch.no_grad(), bar:
            for xs in range(0, n, x_step):
                xb = x[xs:xs + x_step]
                for ts in range(0, m, t_step):
                    t = theta[ts:ts + t_step]
                    if callable(table):
                        block = table(xb, t)
                    else:
                        block = self._terms(xb.repeat(len(t), 1), t.repeat_interleave(len(xb), 0))
                    # the one place inference reads a surrogate's terms: from its device (`Estimator.to`) to the CPU
                    out[ts:ts + t_step, xs:xs + x_step] = block.to("cpu", DTYPE).reshape(len(t), len(xb))
                    bar.update(len(t) * len(xb))
        return out

    def log_likelihood(self, theta, x_obs, weights=None) -> Tensor:
        """ℓ(θ) = Σ_i w_i log r̂(x_i|θ) up to a constant in θ: θ (m, d), x (n, x_dim) → (m,).

        Arguments:
            weights: (n,) non-negative weights of the observations (1 by default), for example an
                Asimov data set: the x grid weighted by n_obs · p(x|θ_0).
        """
        if weights is None:  # discrete observations repeat: each distinct x once, weighted by its count
            x_obs, weights = distinct(self.check_x_obs(x_obs, warn=False))
        per_event = self.per_event(theta, x_obs)
        if weights is None:
            return per_event.sum(1)
        w = torch.as_tensor(weights, dtype=DTYPE).reshape(-1)
        if w.shape != (per_event.shape[1],) or (w < 0).any() or not torch.isfinite(w).all():
            raise ValueError(f"weights must be {per_event.shape[1]} finite non-negative numbers, one per observation.")
        # a zero weight drops the observation even where its log-likelihood is −inf
        return torch.where(w > 0, per_event * w, torch.zeros(())).sum(1)

    # -- grids -------------------------------------------------------------------------------

    def grid(self, points: int | None = None) -> Tensor:
        """An even grid over the box `grid_low`..`grid_high` (the prior's box, or see `bounds`): `points` per
        axis (101 in 1-D, 41 in 2-D, fewer above) → (points^d, theta_dim)."""
        if self.grid_low is None:
            raise ValueError("the model has no prior and no bounds, so there is no θ grid: pass prior= (a torch "
                             "distribution) or bounds=(low, high) to Model, or give the grid (g, theta_dim).")
        if points is None:
            points = {1: 101, 2: 41, 3: 15}.get(self.theta_dim, 7)
        checks.int_at_least(points, "grid points per axis", 2)
        axes = [torch.linspace(float(lo), float(hi), points, dtype=DTYPE) for lo, hi in
                zip(self.grid_low, self.grid_high)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.theta_dim)


def check_x_obs(x_obs, x_dim: int, x_shape: tuple[int, ...] | None = None) -> Tensor:
    """Observations as (n, x_dim) float64, shaped by `goldmine.checks.rows` (a 1-D array is n scalar
    observations when x_dim = 1, else one observation). An x of more axes (x_shape, e.g. images (1, 64, 64))
    is given as (n, *x_shape), flat rows (n, x_dim) or one x (x_shape), and flattened: inference reads one flat
    row per observation, and the surrogate reshapes it.

    Raises:
        ValueError: another shape, no rows, or NaN / infinite values.
    """
    if x_shape is not None and len(x_shape) > 1:
        x = checks.shaped_rows(x_obs, x_shape, "x_obs", hint=" (n observations of the simulator's x)")
        x_obs = x.reshape(len(x), x_dim)
    x = checks.rows(x_obs, x_dim, "x_obs", hint=" (n observations of the simulator's x)")
    if len(x) == 0:
        raise ValueError(f"x_obs is empty: pass at least one observation, shape (n, {x_dim}).")
    return x


def distinct(x: Tensor) -> tuple[Tensor, Tensor | None]:
    """The distinct rows of x (n, x_dim) and their counts, the weights of ℓ; or x and None when all differ."""
    unique, inverse = torch.unique(x, dim=0, return_inverse=True)
    if len(unique) == len(x):
        return x, None
    return unique, torch.bincount(inverse, minlength=len(unique)).to(DTYPE)


def as_model(model, prior=None, simulator=None, bounds=None) -> Model:
    """`model` itself when it is a Model (prior and simulator fill what it lacks), else Model(model, ...)."""
    if isinstance(model, Model):
        if simulator is not None and model.simulator is None:
            model.simulator = simulator
        return model
    return Model(model, prior=prior, simulator=simulator, bounds=bounds)
