"""The simulator protocol and the black-box adapter.

A simulator is batched over rows of θ. Given θ: (n, d_θ) it draws x: (n, d_x) and the latent path z
of every run. A simulator that we can look into also evaluates the joint log-likelihood
log p(x, z|θ) of a recorded run under any other θ (replay), differentiably in θ; from it mining
gets the joint likelihood ratio and the joint score ("gold"):

    r(x, z|θ, θ_ref) = p(x, z|θ) / p(x, z|θ_ref),    t(x, z|θ) = ∇_θ log p(x, z|θ).

Everything runs in float64: joint log-ratios of long latent paths lose precision in float32. A
black-box function (`BlackBoxSimulator`) gets θ in its own dtype, that of its prior's draws by
default, and its x comes back in float64.
The protocol's methods and how to add a built-in simulator: docs/architecture.md.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Uniform

from ..checks import positive_int, rows

DTYPE = torch.float64


@dataclass(frozen=True)
class Draws:
    """The outcome of simulator runs.

    Attributes:
        x: observations, (n, d_x).
        z: latent state of each run: a tensor or a dict of tensors whose first dimension is n,
            or None when the simulator is a black box.
        stats: sufficient statistics T(x, z) of each run, (n, k) float64, or None: what an
            `ExponentialFamily` simulator returns beside the latent path, or instead of it.
    """

    x: Tensor
    z: Any = None
    stats: Tensor | None = None


def box_prior(low, high) -> Distribution:
    """A uniform prior on the box [low, high] (one bound per θ dimension), in float64."""
    low = torch.as_tensor(low, dtype=DTYPE).reshape(-1)
    high = torch.as_tensor(high, dtype=DTYPE).reshape(-1)
    return Independent(Uniform(low, high), 1)


def box_bounds(prior: Distribution) -> tuple[Tensor | None, Tensor | None]:
    """The (low, high) corners of a prior's support when it is a box, else (None, None)."""
    base = prior.base_dist if isinstance(prior, Independent) else prior
    if isinstance(base, Uniform):
        shape = prior.event_shape or (1,)
        return base.low.to(DTYPE).expand(shape).clone(), base.high.to(DTYPE).expand(shape).clone()
    support = prior.support
    while hasattr(support, "base_constraint"):
        support = support.base_constraint
    low, high = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
    if low is None or high is None:
        return None, None
    shape = prior.event_shape or (1,)
    low = torch.as_tensor(low, dtype=DTYPE).expand(shape).clone()
    high = torch.as_tensor(high, dtype=DTYPE).expand(shape).clone()
    if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
        return None, None
    return low, high


def seed_from(generator: torch.Generator | None) -> int:
    """One seed in [0, 2⁶²) drawn from `generator` (from torch's global generator when None)."""
    return int(torch.randint(0, 2**62, (), generator=generator))


def draw_prior(prior: Distribution, n: int, generator: torch.Generator | None = None, *,
               seed: int | None = None) -> Tensor:
    """n draws of a prior, (n, theta_dim) float64, that leave torch's global generator as it was.

    torch distributions draw from the global generator, so a draw is made reproducible in one of
    two ways (give exactly one):

    - `seed`: the draws of ``prior.sample((n,))`` after ``torch.manual_seed(seed)``, made on a fork
      of the global generator. Data sets, ABC and ALFI draw θ this way with ``seed=seed_from(g)``
      of their own generator g, which fixes their θ for every prior.
    - `generator`: draws that use its randomness alone: a uniform box prior by
      low + (high − low)·U(0, 1) from it directly, any other prior as with ``seed=seed_from(generator)``.

    Example:
        >>> prior = box_prior([-1.0], [1.0])
        >>> draw_prior(prior, 3, seed=0).shape
        torch.Size([3, 1])
        >>> torch.equal(draw_prior(prior, 3, seed=0), draw_prior(prior, 3, seed=0))
        True
    """
    if (generator is None) == (seed is None):
        raise ValueError("draw_prior takes exactly one source of randomness: generator= or seed=.")
    n = positive_int(n, "n")
    if generator is not None:
        low, high = box_bounds(prior)
        base = prior.base_dist if isinstance(prior, Independent) else prior
        if isinstance(base, Uniform):
            return low + (high - low) * torch.rand(n, len(low), dtype=DTYPE, generator=generator)
        seed = seed_from(generator)
    with torch.random.fork_rng(devices=[]):
        # the CPU generator alone: torch.manual_seed would also queue the seeding of lazy CUDA, MPS and XPU
        # generators, capturing a stack trace each time (milliseconds per call, per block of a data set)
        torch.default_generator.manual_seed(seed)
        return prior.sample((n,)).to(DTYPE).reshape(n, -1)


#: the order of arguments of every density of the protocol: the density's variable first, the condition second
ARGUMENT_ORDER = {"log_prob": ("x", "theta"), "score": ("x", "theta"), "joint_log_prob": ("draws", "theta"),
                  "joint_score": ("draws", "theta")}


class Simulator:
    """Base class of every simulator: subclasses set the attributes and implement the methods.

    Densities take the variable whose density they are first and the condition second:
    ``log_prob(x, theta)`` is log p(x|θ), ``joint_log_prob(draws, theta)`` is log p(x, z|θ),
    ``joint_score(draws, theta)`` and ``score(x, theta)`` their gradients in θ. A subclass whose
    method takes θ first (by the name ``theta``) is refused when it is defined.

    Attributes:
        name: a short name, stored in data files to tell simulators apart.
        theta_dim: the dimension of θ.
        x_dim: the dimension of x (the number of its elements).
        x_shape: the shape of one x when it has more than one axis, e.g. (1, 64, 64) for images; None
            (the default) for a vector, (x_dim,). A class that sets x_shape alone gets x_dim = its size;
            an instance that sets it sets x_dim too. `sample` returns x of shape (n, *x_shape).
        prior: a torch distribution over θ with event shape (theta_dim,).
        reference: θ_ref, (theta_dim,), the denominator of every likelihood ratio.
        has_gold: whether `joint_log_prob` exists (False for black boxes).
        block_size: rows that `goldmine.simulate` draws from one seed; the unit of
            reproducibility and of resumption (lower it for simulators with large latent paths).
        defined_outside_prior: whether the simulator can run at θ outside the prior's support.
        theta_names: optional names of θ's components, (theta_dim,) strings, e.g. ("E", "G_f"); plots,
            summaries, the command line and studies use them (θ, or θ₀, θ₁, … without them).
    """

    name: str = "simulator"
    theta_dim: int
    x_dim: int
    x_shape: tuple[int, ...] | None = None
    prior: Distribution
    reference: Tensor
    has_gold: bool = True
    defined_outside_prior: bool = False
    block_size: int = 16384
    theta_names: tuple[str, ...] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("x_shape") is not None and "x_dim" not in cls.__dict__:
            cls.x_dim = int(np.prod(cls.x_shape))
        for method, (first, second) in ARGUMENT_ORDER.items():
            fn = cls.__dict__.get(method)
            if not callable(fn):
                continue
            names = [p.name for p in inspect.signature(fn).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:3]
            if names[:1] == ["theta"] or (len(names) == 2 and names[1] in ("x", "draws")):
                raise TypeError(
                    f"{cls.__name__}.{method}({', '.join(names)}) takes its arguments in the wrong order: "
                    f"goldmine's simulators take {method}({first}, {second}), the density's variable first "
                    "and the condition second. Swap the two arguments."
                )

    def config(self) -> dict:
        """The constructor's arguments as plain JSON values (they identify a simulator in files)."""
        return {}

    # -- validation at the public boundary -------------------------------------------------

    def check_theta(self, theta, what: str = "theta") -> Tensor:
        """Returns θ as a float64 tensor (n, theta_dim), or raises a ValueError naming the fix.

        A vector is read by the rule of `goldmine.checks.rows`: (n,) is n rows when theta_dim = 1,
        (theta_dim,) is one point otherwise. Gradients are kept.
        """
        theta = rows(theta, self.theta_dim, what, hint=f" for {self.name} (theta_dim={self.theta_dim})")
        if theta.shape[0] == 0:
            raise ValueError(f"{what} is empty: give at least one row of shape ({self.theta_dim},).")
        if not self.defined_outside_prior:
            inside = self.prior.support.check(theta.detach())
            if inside.ndim > 1:
                inside = inside.all(dim=-1)
            if not bool(inside.all()):
                row = int((~inside).nonzero()[0])
                raise ValueError(
                    f"{what} row {row} = {theta[row].tolist()} lies outside the support of "
                    f"{self.name}'s prior ({_describe_support(self.prior)}), where the simulator "
                    "is undefined. Draw θ from sim.prior or clip it to the support."
                )
        return theta

    def check_x(self, x, what: str = "x") -> Tensor:
        """Returns x as a float64 tensor (n, x_dim), or raises a ValueError naming the fix.

        Shapes as in `check_theta`; NaN and infinite values pass (a density is then NaN or zero there).
        """
        return rows(x, self.x_dim, what, finite=False, hint=f" for {self.name} (x_dim={self.x_dim})")

    def require_gold(self) -> None:
        """Raises NotImplementedError, naming what still works, when no gold can be mined."""

    # -- the protocol -------------------------------------------------------------------------

    def sample(self, theta: Tensor, generator: torch.Generator | None = None) -> Draws:
        """Runs the simulator once per row of θ: (n, theta_dim) → Draws with x (n, x_dim)."""
        raise NotImplementedError

    def joint_log_prob(self, draws: Draws, theta: Tensor) -> Tensor:
        """log p(x, z|θ) of n recorded runs replayed at θ (n, theta_dim) → (n,), differentiable in θ."""
        raise NotImplementedError(
            f"{self.name} is a black box: it has no joint_log_prob, so no gold can be mined from it."
        )

    def joint_score(self, draws: Draws, theta: Tensor) -> Tensor:
        """t(x, z|θ) = ∇_θ log p(x, z|θ) of n recorded runs at θ (n, theta_dim) → (n, theta_dim). By
        autograd through `joint_log_prob`; built-ins may override it with a hand-written fast path
        (tested against this one)."""
        theta = self.check_theta(theta).detach().requires_grad_(True)
        with torch.enable_grad():
            log_p = self.joint_log_prob(draws, theta)
            (grad,) = torch.autograd.grad(log_p.sum(), theta)
        return grad

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """Exact log p(x|θ): x (n, x_dim), θ (n, theta_dim) → (n,), where it is tractable."""
        raise NotImplementedError(f"{self.name} has no tractable likelihood p(x|θ).")

    def x_grid(self) -> tuple[Tensor, Tensor]:
        """Quadrature over x: nodes (m, x_dim) and weights (m,) with Σ_i w_i f(x_i) ≈ ∫ f(x) dx
        (Σ_x f(x) for discrete x). Exact metrics (`goldmine.evaluate`) integrate over x with it."""
        raise NotImplementedError(
            f"{self.name} has no quadrature grid over x (x_grid), so goldmine.evaluate cannot integrate "
            "over x exactly. Built-ins with a low-dimensional x and a tractable likelihood have one "
            "(GaltonBoard, Poisson, Weinberg); implement x_grid() returning nodes (m, x_dim) and "
            "weights (m,) to add it."
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def shape_of_x(sim: Simulator) -> tuple[int, ...]:
    """The shape of one x of a simulator: its `x_shape`, or (x_dim,) for a vector.

    Raises:
        ValueError: x_shape is not a tuple of positive sizes, or its size differs from x_dim.
    """
    shape = getattr(sim, "x_shape", None)
    if shape is None:
        return (int(sim.x_dim),)
    if not isinstance(shape, (tuple, list)) or not shape or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"{sim.name}.x_shape must be a tuple of positive sizes such as (1, 64, 64); got {shape!r}.")
    if int(np.prod(shape)) != sim.x_dim:
        raise ValueError(f"{sim.name} has x_shape {tuple(shape)} of {int(np.prod(shape))} elements but x_dim = "
                         f"{sim.x_dim}: set x_dim to the number of elements of one x.")
    return tuple(int(d) for d in shape)


def _prior_dtype(prior: Distribution) -> torch.dtype:
    """The float dtype of a prior's draws (of its mean when it has one, else of one draw); float64 if unknown."""
    try:
        probe = prior.mean
    except (NotImplementedError, AttributeError):
        with torch.random.fork_rng(devices=[]):
            probe = prior.sample()
    return probe.dtype if torch.is_tensor(probe) and probe.is_floating_point() else DTYPE


class ExponentialFamily(Simulator):
    """A simulator whose joint density is an exponential family in θ, mined from statistics.

    When log p(x, z|θ) = Σ_i η_i(θ)·T_i(x, z) for natural parameters η(θ) (k of them) and
    statistics T(x, z) (k of them, a base measure log h(x, z) included as a statistic whose
    parameter is 1 and a log-normaliser −A(θ) as a statistic 1), the whole joint likelihood of a
    run at every θ is in its k numbers T:

        log p(x, z|θ) = η(θ)·T,    log r(x, z|θ, θ_ref) = (η(θ) − η(θ_ref))·T,
        t(x, z|θ) = Σ_i T_i ∇_θ η_i(θ)  (the Jacobian of η transposed, times T).

    A subclass implements `sample` returning ``Draws(x, z, stats=T)``, where z may be None (no
    path stored: mining then costs O(k) per run instead of a replay of the path), and
    `natural_parameters(theta)` (n, theta_dim) → (n, k), differentiable in θ. It may override
    `sufficient_statistics(draws)` to compute T from x or z when ``draws.stats`` is absent. The
    joint score comes by autograd through η alone (a hand-written `joint_score` may replace it).

    Example:
        Gillespie jump processes with rates c_j = e^{θ_j}, `LotkaVolterra`: log p(z|θ) =
        Σ_j [n_j θ_j − e^{θ_j} H_j] + log h(z), T = (n_j, H_j, log h), η = (θ_j, −e^{θ_j}, 1).
    """

    def natural_parameters(self, theta: Tensor) -> Tensor:
        """η(θ): θ (n, theta_dim) → (n, k), differentiable in θ."""
        raise NotImplementedError(f"{type(self).__name__} must implement natural_parameters(theta) → (n, k).")

    def sufficient_statistics(self, draws: Draws) -> Tensor:
        """T(x, z) of recorded runs, (n, k) float64: ``draws.stats`` unless a subclass computes it."""
        if draws.stats is None:
            raise ValueError(
                f"draws.stats is None: {self.name} mines from the sufficient statistics that its sample() returns "
                "(Draws(x, z, stats=T)); keep them with the draws."
            )
        return torch.as_tensor(draws.stats, dtype=DTYPE)

    def _stats_and_eta(self, draws: Draws, theta: Tensor) -> tuple[Tensor, Tensor]:
        stats = self.sufficient_statistics(draws)
        eta = self.natural_parameters(theta)
        if eta.shape[0] == 1 and stats.ndim == 2:  # one θ for every run
            eta = eta.expand(stats.shape[0], -1)
        if stats.ndim != 2 or stats.shape != eta.shape:
            raise ValueError(
                f"{self.name}: the draws hold {stats.shape[0]} runs (sufficient statistics of shape "
                f"{tuple(stats.shape)}) but theta has {theta.shape[0]} rows ({eta.shape[-1]} natural parameters "
                "each): give one row of theta per recorded run."
            )
        return stats, eta

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """η(θ)·T, summed over the statistics in their order: n runs, θ (n, theta_dim) → (n,)."""
        theta = self.check_theta(theta)
        stats, eta = self._stats_and_eta(draws, theta)
        out = eta[:, 0] * stats[:, 0]
        for i in range(1, stats.shape[1]):  # in order, so that a closed form written the same way is matched bit for bit
            out = out + eta[:, i] * stats[:, i]
        return out

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """Σ_i T_i ∇_θ η_i(θ) by autograd through η(θ) alone: (n, theta_dim)."""
        theta = self.check_theta(theta).detach().requires_grad_(True)
        with torch.enable_grad():
            stats, eta = self._stats_and_eta(draws, theta)
            (grad,) = torch.autograd.grad((eta * stats).sum(), theta)
        return grad


def _describe_support(prior: Distribution) -> str:
    base = prior.base_dist if isinstance(prior, Independent) else prior
    if isinstance(base, Uniform):
        return f"low={base.low.tolist()}, high={base.high.tolist()}"
    return str(prior.support)


class BlackBoxSimulator(Simulator):
    """Wraps a plain function θ → x whose insides cannot be looked into.

    Mining such a simulator is impossible; the methods that need no gold still work
    (`goldmine.estimators.registry.goldless()`, the "gold: no" rows of `goldmine list methods`).

    Arguments:
        fn: maps θ (n, theta_dim) to x (n, x_dim) (or (n,) for x_dim = 1), or to x of more axes
            (n, *x_shape) (images (n, C, H, W), series, sets), as numpy arrays when ``numpy=True`` and
            torch tensors otherwise. The shape returned at the reference becomes the simulator's
            `x_shape` (None for a vector), which data sets record and embeddings read. Its randomness
            should come from the global numpy / torch generators, which are seeded from ``generator``
            on every call so that runs are reproducible. With ``vectorized=False`` it is called once
            per row.
        prior: a torch distribution over θ with event shape (theta_dim,).
        reference: θ_ref; the prior's mean by default.
        name: stored in data files.
        dtype: the float dtype θ is handed to `fn` in (x comes back in float64); by default the
            dtype of the prior's draws, so that a float32 simulator (sbi's) runs in float32.

    Example:
        >>> import numpy as np
        >>> sim = BlackBoxSimulator(lambda t: t + np.random.normal(size=t.shape), box_prior([-1], [1]))
        >>> sim.sample(torch.zeros(3, 1), generator=torch.Generator().manual_seed(0)).x.shape
        torch.Size([3, 1])
        >>> images = BlackBoxSimulator(lambda t: t[:, :, None, None] + np.random.normal(size=(len(t), 1, 8, 8)),
        ...                            box_prior([-1], [1]))
        >>> images.x_shape, images.x_dim
        ((1, 8, 8), 64)
    """

    has_gold = False

    def __init__(
        self,
        fn: Callable,
        prior: Distribution,
        reference=None,
        *,
        numpy: bool = True,
        vectorized: bool = True,
        name: str = "black-box",
        dtype: torch.dtype | None = None,
    ):
        self.fn = fn
        self.dtype = _prior_dtype(prior) if dtype is None else dtype
        self.prior = prior
        self.theta_dim = int(prior.event_shape[0]) if prior.event_shape else 1
        if reference is None:
            try:
                reference = prior.mean
            except NotImplementedError:  # a prior without a mean: the mean of seeded draws
                reference = draw_prior(prior, 1000, seed=0).mean(0)
        self.reference = torch.as_tensor(reference, dtype=DTYPE).reshape(-1)
        self.numpy = numpy
        self.vectorized = vectorized
        self.name = name
        probe = self._call(self.reference[None], seed=0)
        self.x_shape = tuple(probe.shape[1:]) if probe.ndim > 2 else None  # None: a vector of x_dim
        self.x_dim = int(np.prod(probe.shape[1:]))

    def config(self) -> dict:
        return {"fn": getattr(self.fn, "__qualname__", repr(self.fn)), "name": self.name}

    def _call(self, theta: Tensor, seed: int) -> Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            state = np.random.get_state()
            np.random.seed(seed % 2**32)
            try:
                arg = theta.detach().to(self.dtype)  # the simulator's own dtype, float64 by default
                arg = arg.numpy() if self.numpy else arg
                if self.vectorized:
                    out = self.fn(arg)
                else:
                    out = [self.fn(row) for row in arg]
                    out = np.stack(out) if self.numpy else torch.stack(list(map(torch.as_tensor, out)))
            finally:
                np.random.set_state(state)
        x = torch.as_tensor(np.asarray(out) if self.numpy else out).to(DTYPE)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim < 2 or x.shape[0] != theta.shape[0] or 0 in x.shape:
            raise ValueError(
                f"the simulator function returned shape {tuple(x.shape)} for θ of shape "
                f"{tuple(theta.shape)}; it must return one x per row of θ: (n, x_dim), (n,), or "
                "(n, *x_shape) for x of more axes such as images (n, C, H, W)."
            )
        return x

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta)
        x = self._call(theta, seed_from(generator))
        shape = self.x_shape or (self.x_dim,)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"the simulator function returned x of shape (n, {', '.join(map(str, x.shape[1:]))}), but "
                f"(n, {', '.join(map(str, shape))}) when probed at the reference: the shape of one x must not "
                "change with θ or the number of rows."
            )
        return Draws(x, None)

    def require_gold(self) -> None:
        from ..estimators.registry import goldless_text  # the estimators import the simulators

        raise NotImplementedError(
            f"{self.name} is a black-box simulator: goldmine cannot look into it, so it has no "
            f"joint likelihood and no gold. Methods that need no gold still work: {goldless_text()}. "
            "To mine gold, implement joint_log_prob (see the README) or write it as a Pyro model."
        )

    def joint_log_prob(self, draws, theta):
        self.require_gold()

    def joint_score(self, draws, theta):
        self.require_gold()


def has_exact(sim: Simulator) -> bool:
    """Whether the simulator has an exact likelihood log p(x|θ): its class overrides `Simulator.log_prob`."""
    return type(sim).log_prob is not Simulator.log_prob


__all__ = ["Draws", "Simulator", "ExponentialFamily", "has_exact", "BlackBoxSimulator", "box_prior", "box_bounds", "draw_prior", "seed_from", "DTYPE",
           "shape_of_x"]
