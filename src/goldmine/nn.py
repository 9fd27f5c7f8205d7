"""Small building blocks: a smooth MLP, input standardisation and a conditional flow.

The activations are smooth (SiLU by default) because the score-based losses differentiate the
network with respect to its θ input and then train on that gradient: piecewise-linear activations
would make ∇_θ log r̂ piecewise constant.
"""

from __future__ import annotations

from typing import Iterable

import torch
import zuko
from torch import Tensor, nn

from . import checks

ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "softplus": nn.Softplus}


def mlp(in_dim: int, out_dim: int, hidden: Iterable[int] = (128, 128, 128), activation: str = "silu") -> nn.Sequential:
    """A fully connected network in_dim → hidden… → out_dim with the named activation between layers."""
    check_activation(activation)
    layers, width = [], in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


FLOWS = {"nsf": zuko.flows.NSF, "maf": zuko.flows.MAF}
#: flow="auto": the candidates, each (flow, its activation when none is given), tried in this order; the
#: estimator keeps the one of the lower validation loss (`pick_flow`). The affine one is sbi's default MAF's
#: family (tanh), which holds a conditional Gaussian; the splines (silu) learn edges and several modes.
AUTO_FLOWS = (("nsf", "silu"), ("maf", "tanh"))
DEFAULT_ACTIVATION = "silu"


def check_activation(activation: str) -> None:
    """Raises a ValueError for an activation that is not one of `ACTIVATIONS`."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}.")


def check_flow_settings(flow: str, activation: str | None, **counts) -> None:
    """Raises a ValueError for an unknown flow or activation, or a count (transforms, bins) that is not ≥ 1.
    flow may be "auto" (`AUTO_FLOWS`) and activation None (the flow's own, `flow_activation`)."""
    if not isinstance(flow, str) or (flow not in FLOWS and flow != "auto"):
        raise ValueError(f"unknown flow {flow!r}; known: {', '.join(FLOWS)}, auto.")
    if activation is not None:
        check_activation(activation)
    for name, value in counts.items():
        checks.positive_int(value, name)


def conditional_flow(flow: str, features: int, context: int, transforms: int, hidden, bins: int,
                     activation: str) -> nn.Module:
    """A zuko flow over `features` dimensions given `context`: nsf (rational-quadratic splines of `bins`
    bins) or maf (affine), its networks with hidden layers of the widths `hidden` and the named smooth
    activation."""
    spline = {"bins": bins} if flow == "nsf" else {}
    return FLOWS[flow](features, context, transforms=transforms, hidden_features=tuple(hidden),
                       activation=ACTIVATIONS[activation], **spline)


def flow_activation(flow: str, chosen: str, activation: str | None) -> str:
    """The activation of a flow estimator's networks: the one given, else tanh for the affine candidate of
    flow="auto" (`AUTO_FLOWS`) and silu otherwise (also for flow="maf" named by the user)."""
    if activation is not None:
        return activation
    return dict(AUTO_FLOWS)[chosen] if flow == "auto" else DEFAULT_ACTIVATION


def flow_hidden(hidden, training: dict, default: tuple[int, ...]) -> tuple[int, ...]:
    """The hidden widths of a flow estimator: `hidden`, or `hidden_features` (its former name, still in
    saved models and scripts) popped from the estimator's other keyword arguments `training`."""
    if "hidden_features" not in training:
        return checks.widths(hidden, "hidden")
    old = training.pop("hidden_features")
    if checks.widths(hidden, "hidden") != tuple(default):
        raise ValueError("hidden and hidden_features are the same setting (hidden_features is its former name): "
                         "give hidden only.")
    return checks.widths(old, "hidden_features")


class ConditionalFlow(nn.Module):
    """log q(v|c) of raw v given raw c: a zuko flow on standardised v with standardised c as its context.

    The flow sees u = (v − m_v)/s_v given (c − m_c)/s_c, so that

        log q(v|c) = log q_u(u|c) − Σ_j log s_v,j.

    nle and scandal model p̂(x|θ) with it (v = x, c = θ), npe q(θ|x) (v = θ, c = x). The two
    standardisations (`v_norm`, `c_norm`, fitted by the estimator) are stored under the names of what
    they standardise, e.g. x_norm and theta_norm, so that saved weights name them by their role.

    Arguments:
        v_dim, c_dim: the dimensions of v and of c.
        flow, transforms, hidden, bins, activation: the flow (see `conditional_flow`).
        names: the names of v and c, e.g. ("x", "theta"): the standardisations are `<name>_norm`.
        context: what c is read through, (c_norm, embedding, features) of `goldmine.embeddings.x_input`,
            with `c_shape` the shape of one c: the flow's context is then embedding(c_norm(c)) (npe with an
            embedding network of x). None: the flow reads c_norm(c).
        c_shape: the shape of one c (rows of c may come flat and are reshaped to it).
    """

    def __init__(self, v_dim: int, c_dim: int, flow: str, transforms: int, hidden, bins: int, activation: str,
                 names: tuple[str, str] = ("v", "c"), context: tuple | None = None, c_shape=None):
        super().__init__()
        self.names = tuple(names)
        self.add_module(f"{self.names[0]}_norm", Standardize(v_dim))
        c_norm, self.embedding, width = context or (Standardize(c_dim), None, c_dim)
        self.c_shape = tuple(c_shape) if context is not None and c_shape is not None else None
        self.add_module(f"{self.names[1]}_norm", c_norm)
        self.flow = conditional_flow(flow, v_dim, width, transforms, hidden, bins, activation)

    def context(self, c: Tensor) -> Tensor:
        """The flow's context: c_norm(c), or embedding(c_norm(c)) with c reshaped to (n, *c_shape)."""
        if self.c_shape is not None:
            c = c.reshape(len(c), *self.c_shape)
        s = self.c_norm(c)
        return s if self.embedding is None else self.embedding(s)

    @property
    def v_norm(self) -> Standardize:
        return getattr(self, f"{self.names[0]}_norm")

    @property
    def c_norm(self) -> Standardize:
        return getattr(self, f"{self.names[1]}_norm")

    def log_prob(self, v: Tensor, c: Tensor) -> Tensor:
        """log q(v|c): (n, v_dim), (n, c_dim) → (n,)."""
        log_q = self.flow(self.context(c)).log_prob(self.v_norm(v))
        return log_q - self.v_norm.std.log().sum()

    def forward(self, v: Tensor, c: Tensor) -> Tensor:
        """log q(v|c), as `log_prob`."""
        return self.log_prob(v, c)

    @torch.no_grad()
    def sample(self, c: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One v ~ q(v|c) per row of c: (n, c_dim) → (n, v_dim); the flow's base noise from `generator`."""
        dist = self.flow(self.context(c))
        z = torch.randn(len(c), len(self.v_norm.mean), generator=generator).to(c.device)  # same draws anywhere
        return dist.transform.inv(z) * self.v_norm.std + self.v_norm.mean


def with_theta_gradient(fn, x: Tensor, theta: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
    """fn(x, θ): (n,) and its gradient in the θ input, (n, theta_dim), for the score-based losses.

    Rows are independent, so the gradient of the sum gives every row's own gradient;
    `create_graph` keeps it differentiable for training (double backward).
    """
    with torch.enable_grad():
        theta = theta.detach().requires_grad_(True)
        value = fn(x, theta)
        (grad,) = torch.autograd.grad(value.sum(), theta, create_graph=create_graph)
    return value, grad


class Standardize(nn.Module):
    """y = (v − mean) / std with statistics learned from training data (buffers, so they are saved).

    Arguments:
        dim: the dimension of v, or the shape of one row of v (x of any shape, e.g. (C, H, W)).
        shared: axes of one row (0-based, without the row axis) that share one mean and std, e.g.
            (1, 2) for one statistic per channel of an image (C, H, W); none by default (per element).

    Statistics of one axis, (dim,), standardise a row of any shape by flattening it first: x of shape
    (n, *x_shape) fed to a network that has no embedding becomes (n, x_dim).
    """

    def __init__(self, dim: int | tuple[int, ...], shared: tuple[int, ...] = ()):
        super().__init__()
        shape = (dim,) if isinstance(dim, int) else tuple(int(d) for d in dim)
        self.shared = tuple(int(a) for a in shared)
        stat = tuple(1 if a in self.shared else d for a, d in enumerate(shape))
        self.register_buffer("mean", torch.zeros(stat))
        self.register_buffer("std", torch.ones(stat))

    def _rows(self, v: Tensor) -> Tensor:
        return v.flatten(1) if self.mean.ndim == 1 and v.ndim > 2 else v

    def forward(self, v: Tensor) -> Tensor:
        return (self._rows(v) - self.mean) / self.std

    @torch.no_grad()
    def fit(self, batches: Iterable[Tensor]) -> "Standardize":
        """Learns mean and std from an iterable of (n_i, *shape) tensors in one streaming pass."""
        axes = (0, *(a + 1 for a in self.shared))
        count, total, squares = 0, 0.0, 0.0
        for v in batches:
            v = self._rows(v).double()
            count += len(v) * (v[0].numel() // self.mean.numel() if len(v) else 0)
            total = total + v.sum(axes, keepdim=bool(self.shared)).reshape(self.mean.shape)
            squares = squares + (v**2).sum(axes, keepdim=bool(self.shared)).reshape(self.mean.shape)
        if count == 0:
            raise ValueError("no rows to learn the input standardisation from.")
        mean = total / count
        var = (squares / count - mean**2).clamp(min=0)
        self.mean.copy_(mean)
        # constant inputs (e.g. θ fixed at θ_ref) keep unit scale instead of dividing by zero
        self.std.copy_(torch.where(var > 1e-12, var.sqrt(), torch.ones_like(var)))
        return self
