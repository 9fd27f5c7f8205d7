"""Parametrized likelihood-ratio estimators: every method of the ratio family (carl, rolr, alice, cascal,
rascal, alices, nre, nres and any registered later; `goldmine list methods`).

A network gives log r̂(x|θ) ≈ log p(x|θ)/p(x|θ_ref) for every θ at once (θ is an input). It is
anchored at the reference, log r̂(x|θ) = g(x, θ) − g(x, θ_ref), so that log r̂(x|θ_ref) = 0 holds
exactly, as it does for the true ratio; a method registered with anchored=False (nre, nres) learns
g(x, θ) ≈ log p(x|θ)/p(x) instead, and log r̂ = g(x, θ) − g(x, θ_ref) is formed afterwards.

Each method is one loss of `goldmine.losses`, registered in `goldmine.estimators.registry` with
`ratio_method`, which reads the loss's argument names: every batch, the estimator hands the loss the
arguments it names from `RATIO_INPUTS` (the network's log r̂, its gradient t̂ = ∇_θ log r̂, the label,
the mined log r and t, α, the clipping), so the fields a method reads and whether it needs the
double backward follow from its loss. Two registration flags change what the network sees:

    repaired   a row drawn at θ_ref is paired with a fresh θ of the prior in every epoch (`_repaired`)
    label      train only on the rows of one label (nre, nres: the rows drawn at θ ~ prior, the draws from
               the joint; the loss pairs them with θ shuffled within the batch for the marginals)

Weighting (`RatioEstimator(weighting="ratio")`, the default of alice and alices): each row's cross-entropy
is multiplied by w = 1 + r̂(x|θ), not differentiated (the losses' argument `weight`; a score term is not
weighted). Per θ, the cross-entropy's excess over its minimum is,
for a small error δ(x) = log r̂(x|θ) − log r(x|θ), about ½·Σ_x p(x|θ) δ(x)² / (1 + r(x|θ)) (its curvature in
log r̂ is p(x|θ) p(x|θ_ref) / (p(x|θ) + p(x|θ_ref))), while the error that matters, and that
`goldmine.evaluate.log_ratio_error` measures, is Σ_x p(x|θ) δ(x)²: unweighted, the cross-entropy hardly
sees errors where r is large, at x that θ makes far more likely than θ_ref (at the prior's edge). With
w = 1 + r̂ the two agree near the optimum. A positive weight that depends only on (x, θ) multiplies the
expected gradient at (x, θ) of both classes alike, so the minimiser, the true r, stays the same (the loss
stays proper). log r̂ is clipped at `clip` inside w. Hard labels (carl, cascal) turn the weight into an
importance weight r̂ on the rare rows at θ_ref where r̂ is large, which feeds on itself, so they keep w = 1
(benchmarks/README.md, "The 10× target with the ratio weighting").

Balancing (`RatioEstimator(balance=λ)`, BNRE): the batch's loss gains λ·(mean σ(log r̂) over one class + mean
σ(log r̂) over the other − 1)² (`goldmine.losses.balancing`), zero for the true ratio; the classes are the rows drawn
at θ and at θ_ref (label 0 and 1, with the θ the method trains them with: re-paired for carl and cascal), or for
the unanchored methods (nre, nres) the joint pairs (x, θ) and the shuffled ones (x, θ'). It asks an imperfect
classifier to err on the conservative side (Delaunoy et al.); 0 by default for every method, since on the Galton
board and Weinberg it cost error without bringing the Wilks regions' coverage to nominal (benchmarks/README.md,
"Measurements behind the defaults").

The score term α·‖∇_θ log r̂(x|θ) − t(x, z|θ)‖² counts only the rows drawn at θ; it differentiates the
network in θ inside the loss (double backward), on those rows only. Clipping: rolr and rascal clip
the log-ratios inside the squared errors (see goldmine.losses.rolr); the cross-entropies need none,
since they stay in log space.

References:
    Cranmer, Pavez, Louppe, "Approximating likelihood ratios with calibrated discriminative
    classifiers", https://arxiv.org/abs/1506.02169 (carl)
    Brehmer, Louppe, Pavez, Cranmer, PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
    Stoye et al., https://arxiv.org/abs/1808.00973 (alice, alices)
    Hermans, Begy, Louppe, "Likelihood-free MCMC with amortized approximate ratio estimators",
    https://arxiv.org/abs/1903.04057 (nre)
    Delaunoy, Hermans, Rozet, Wehenkel, Louppe, "Towards reliable simulation-based inference with balanced neural
    ratio estimation", NeurIPS 2022, https://arxiv.org/abs/2208.13624 (balance)
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Callable

import torch
from torch import Tensor, nn

from .. import checks, losses
from ..data import Dataset
from ..embeddings import embedding_record, embedding_spec, features, x_input
from ..nn import Standardize, check_activation, mlp, with_theta_gradient
from .base import Estimator, register
from .registry import FIELDS, Method, family_method, register_method

#: what a ratio loss may ask for by argument name: its meaning and the data fields behind it
RATIO_INPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "log_r_hat": ("log r̂(x|θ) of the network (θ re-paired for repaired methods): (n,)", ("theta", "x")),
    "score_hat": ("∇_θ log r̂(x|θ) on the rows drawn at θ, zeros on those drawn at θ_ref: (n, theta_dim)",
                  ("theta", "x", "label")),
    "log_r_hat_marginal": ("the network at (x_i, θ_{i+1}), θ rolled by one within the shuffled batch: pairs "
                           "from the product of the marginals: (n,)", ("theta", "x")),
    "y": ("the label, 0 for x drawn at θ and 1 for x drawn at θ_ref: (n,)", ("label",)),
    "log_r": ("the mined joint log-ratio log r(x, z|θ, θ_ref): (n,)", ("log_r",)),
    "score": ("the mined joint score t(x, z|θ): (n, theta_dim)", ("score",)),
    "alpha": ("the estimator's weight α of the score term", ()),
    "clip": ("the estimator's clipping of log-ratios", ()),
    "weight": ("the weight w of each row's cross-entropy, not differentiated: 1 + r̂(x|θ) with weighting='ratio' "
               "(`ratio_weight`), else 1: (n,) or 1.0", ("theta", "x")),
}
NETWORK_INPUTS = ("log_r_hat", "score_hat", "log_r_hat_marginal")
#: `RatioEstimator(weighting=...)`: "none" (w = 1) or "ratio" (w = 1 + r̂, the module docstring)
WEIGHTINGS = ("none", "ratio")


def ratio_weight(log_r_hat: Tensor, clip: float) -> Tensor:
    """w = 1 + r̂(x|θ) with log r̂ clipped at `clip`, not differentiated: (n,) → (n,).

    Multiplying each row's cross-entropy by w makes its excess loss near the optimum ½·Σ_x p(x|θ)·δ(x)²,
    the expected squared error of log r̂ under p(x|θ) (the module docstring).

    Example:
        >>> w = ratio_weight(torch.tensor([0.0, 2.0, 50.0], requires_grad=True), clip=10.0)
        >>> torch.allclose(w, 1 + torch.tensor([0.0, 2.0, 10.0]).exp()), w.requires_grad
        (True, False)
    """
    return 1 + log_r_hat.detach().clamp(max=clip).exp()


#: activations (pairs × widest layer) per torch thread in a block of `RatioNetwork.table` on the CPU: 1 MB of
#: float32, which a core's cache holds (benchmarks/README.md, "neyman_speed")
TABLE_VALUES = 1 << 18


def ratio_inputs(loss: Callable) -> tuple[str, ...]:
    """The `RATIO_INPUTS` that `loss` takes, by argument name.

    Raises:
        ValueError: an argument without a default is none of them, or the loss reads no network output.
    """
    params = inspect.signature(loss).parameters
    unknown = [k for k, p in params.items() if k not in RATIO_INPUTS and p.default is p.empty]
    name = getattr(loss, "__name__", repr(loss))
    if unknown:
        raise ValueError(f"the ratio loss {name} takes {unknown}, which the ratio estimator does not provide: name "
                         f"its arguments after {', '.join(RATIO_INPUTS)} (goldmine.estimators.ratio.RATIO_INPUTS).")
    taken = tuple(k for k in params if k in RATIO_INPUTS)
    if not any(k in NETWORK_INPUTS for k in taken):
        raise ValueError(f"the ratio loss {name} reads no output of the network: give it one of "
                         f"{', '.join(NETWORK_INPUTS)}.")
    return taken


def ratio_method(name: str, loss: Callable, about: str, reference: str, *, label: int | None = None,
                 repaired: bool = False, anchored: bool = True, defaults: dict | None = None) -> Method:
    """A method of the ratio family, trained by `RatioEstimator`, for `register_method`.

    The fields it reads and whether it needs the network's gradient in θ follow from the loss's
    argument names (`RATIO_INPUTS`).

    Arguments:
        name, about, reference: as in `goldmine.estimators.registry.Method`.
        loss: the loss per row, with arguments named from `RATIO_INPUTS`.
        label: train only on the rows of this label (None: both).
        repaired: pair each row drawn at θ_ref with the θ of its neighbour in the shuffled batch.
        anchored: log r̂(x|θ) = g(x, θ) − g(x, θ_ref) during training (False: g(x, θ) itself).
        defaults: the method's own defaults of RatioEstimator's options; alpha is 1, weighting "none" and balance 0
            unless given.

    Example:
        >>> def brier(log_r_hat, y):
        ...     return (torch.sigmoid(-log_r_hat) - y) ** 2
        >>> m = ratio_method("brier", brier, "squared error of ŝ", "Brier (1950)")
        >>> m.fields, m.needs_gold, m.theta_gradient
        (('theta', 'x', 'label'), False, False)
    """
    taken = ratio_inputs(loss)
    fields = {f for k in taken for f in RATIO_INPUTS[k][1]} | ({"label"} if repaired else set())
    return Method(name, "ratio", RatioEstimator, about, reference, fields=tuple(f for f in FIELDS if f in fields),
                  label=label, loss=loss, defaults={"alpha": 1.0, "weighting": "none", "balance": 0.0, **(defaults or {})},
                  theta_gradient="score_hat" in taken, repaired=repaired, anchored=anchored)


def _repaired(b) -> Tensor:
    """carl and cascal: each row drawn at θ_ref gets the θ of its neighbour in the (shuffled) batch.

    x drawn at θ_ref does not depend on θ, so (x_ref, θ') is a valid sample of the reference class for
    every θ' of the prior, and a batch shuffled afresh every epoch pairs each x_ref with new θ's. The
    mined log r and t belong to their own row's θ, so the methods that read them cannot do this.
    Re-pairing lowers carl's error most where the runs are few (benchmarks/README.md, "Measurements
    behind the defaults").
    """
    theta, at_ref = b["theta"], b["label"][:, None] == 1
    return torch.where(at_ref, theta.roll(1, dims=0), theta)


def _with_score(e, net, b, theta=None) -> tuple[Tensor, Tensor]:
    """log r̂ on every row, and ∇_θ log r̂ on the rows drawn at θ (zeros on those drawn at θ_ref).

    The score term counts only the rows drawn at θ, so only they go through the double backward, which
    keeps an epoch of the gold methods close to carl's (benchmarks/README.md, gold_epoch_time_vs_carl).
    """
    x, theta = b["x"], b["theta"] if theta is None else theta
    at_theta, at_ref = (b["label"] == 0).nonzero()[:, 0], (b["label"] != 0).nonzero()[:, 0]
    value, score = e._forward(net, x[at_theta], theta[at_theta], True)
    value = value.new_zeros(len(x)).index_copy(0, at_theta, value).index_copy(0, at_ref, net(x[at_ref], theta[at_ref]))
    return value, score.new_zeros(theta.shape).index_copy(0, at_theta, score)


def _loss_inputs(e, spec: Method, taken: tuple[str, ...], net, b) -> dict[str, object]:
    """The arguments `taken` of the method's loss for one batch `b`."""
    theta = _repaired(b) if spec.repaired else b["theta"]
    out: dict[str, object] = {}
    if spec.theta_gradient:
        out["log_r_hat"], out["score_hat"] = _with_score(e, net, b, theta)
    elif "log_r_hat" in taken:
        out["log_r_hat"] = net(b["x"], theta)
    if "log_r_hat_marginal" in taken:
        out["log_r_hat_marginal"] = net(b["x"], theta.roll(1, dims=0))
    given = {"y": "label", "log_r": "log_r", "score": "score"}
    out.update({k: b[given[k]] for k in taken if k in given})
    out.update({k: getattr(e, k) for k in ("alpha", "clip") if k in taken})
    if "weight" in taken:
        out["weight"] = ratio_weight(out["log_r_hat"], e.clip) if e.weighting == "ratio" else 1.0
    return {k: out[k] for k in taken}


def balance_inputs(spec: Method) -> tuple[str, ...]:
    """The `RATIO_INPUTS` that the balancing penalty of `spec`'s classes reads: the logits and labels of the rows
    drawn at θ and at θ_ref, or for a method trained on the rows of one label the logits of the joint and the
    shuffled pairs.

    Raises:
        ValueError: the method trains on rows of one class only and forms no shuffled pairs.
    """
    if spec.label is None:
        return ("log_r_hat", "y")
    if "log_r_hat_marginal" in ratio_inputs(spec.loss):
        return ("log_r_hat", "log_r_hat_marginal")
    raise ValueError(f"balance needs two classes of rows, and {spec.name} trains on the rows of label {spec.label} "
                     f"alone without shuffled pairs: use balance=0 for it.")


def balance_penalty(inputs: dict[str, Tensor]) -> Tensor:
    """`losses.balancing` of one batch: between the rows drawn at θ and at θ_ref (label y), or between the joint
    pairs and the shuffled ones (log_r_hat_marginal)."""
    if "log_r_hat_marginal" in inputs:
        return losses.balancing(inputs["log_r_hat"], inputs["log_r_hat_marginal"])
    at_theta = inputs["y"] == 0
    return losses.balancing(inputs["log_r_hat"][at_theta], inputs["log_r_hat"][~at_theta])


def cross_entropy(net: nn.Module, b: dict[str, Tensor]) -> Tensor:
    """The classification cross-entropy of ŝ = 1/(1 + r̂(x|θ)) between the rows drawn at θ (label 0) and
    at θ_ref (label 1, with their pair's θ), `losses.carl` without re-pairing: a proper scoring rule for
    every ratio surrogate, minimised by the true r(x|θ, θ_ref), that needs no gold. The ratio family's
    validation monitor "xent" (`Trainer(keep="xent")`)."""
    log_r_hat = net(b["x"], b["theta"])
    return losses.carl(log_r_hat, b["label"].to(log_r_hat.dtype)).mean()


class RatioNetwork(nn.Module):
    """log r̂(x|θ) = g(s, θ) − g(s, θ_ref) (anchored) or g(s, θ), g an MLP on standardised (s, θ), where
    s = x̃ (x standardised, flattened), or s = e(x̃) with an embedding network e (`goldmine.embeddings`)."""

    def __init__(self, theta_dim: int, x_dim: int, reference: Tensor, hidden, activation: str, anchored: bool = True,
                 embedding=None, x_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.anchored = anchored
        self.x_norm, self.embedding, width = x_input(embedding, x_dim, x_shape)
        self.theta_norm = Standardize(theta_dim)
        self.g = mlp(width + theta_dim, 1, hidden, activation)
        self.register_buffer("reference", reference.float().reshape(1, -1))

    def features(self, x: Tensor) -> Tensor:
        """s: x (n, *x_shape) → (n, features), the input of g beside θ."""
        return features(self.x_norm, self.embedding, x)

    def _h(self, s: Tensor, theta: Tensor) -> Tensor:
        return self.g(torch.cat([s, self.theta_norm(theta)], dim=1))[:, 0]

    def _g(self, x: Tensor, theta: Tensor) -> Tensor:
        return self._h(self.features(x), theta)

    def table(self, s: Tensor, theta: Tensor) -> Tensor:
        """g(s_i, θ_j) for every pair: s (n, features), θ (m, theta_dim) → (m, n), as `_h` gives pair by pair.

        g's first layer is affine in its input, W·[s; θ̃] + b = W_s·s + (W_θ·θ̃ + b): each part is computed
        once per s and once per θ and the two are added per pair. The pairs then pass the rest of g in
        blocks of TABLE_VALUES activations per torch thread, which stay in the cores' caches, where one
        large batch would stream every layer's activations through memory (on an accelerator: blocks of
        2¹⁸ pairs).
        """
        first, rest = self.g[0], self.g[1:]
        k = s.shape[1]
        hs = nn.functional.linear(s, first.weight[:, :k])  # (n, width)
        ht = nn.functional.linear(self.theta_norm(theta), first.weight[:, k:], first.bias)  # (m, width)
        m, n = len(ht), len(hs)
        widest = max(layer.out_features for layer in self.g if isinstance(layer, nn.Linear))
        # a cache-sized share for each of torch's threads (fewer hand-offs between them)
        block = max(1, TABLE_VALUES * torch.get_num_threads() // widest) if hs.device.type == "cpu" else 1 << 18
        per, step = max(1, block // n), min(n, block)  # θ per block (several when the s are few), s per block
        out = torch.empty(m, n, dtype=hs.dtype, device=hs.device)
        for t in range(0, m, per):
            for a in range(0, n, step):
                h = (ht[t:t + per, None, :] + hs[None, a:a + step, :]).reshape(-1, hs.shape[1])
                out[t:t + per, a:a + step] = rest(h).reshape(min(per, m - t), min(step, n - a))
        return out

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        """x: (n, *x_shape), θ: (n, theta_dim) → log r̂: (n,)."""
        s = self.features(x)
        if not self.anchored:
            return self._h(s, theta)
        return self._h(s, theta) - self._h(s, self.reference.expand_as(theta))


@register
class RatioEstimator(Estimator):
    """A neural estimator of log r(x|θ, θ_ref), trained by one method of the ratio family.

    A surrogate for inference (`goldmine.inference.surrogate`): its likelihood terms are log r̂(x|θ, θ_ref).

    Arguments:
        method: a method of the ratio family: carl, rolr, alice, cascal, rascal, alices, nre, nres, or one
            registered later (`goldmine list methods`). None (the default): nre on data without runs at
            θ_ref (layout "prior"), else alice when the data have gold (a simulator with a joint
            likelihood), else carl, decided by `fit`.
        alpha: the weight α ≥ 0 of the score term (cascal, rascal, alices, nres); by default the method's own
            (`defaults` in the registry: 10 for rascal, whose regression on ratios has a much larger scale
            than its score term, 0.1 for nres, whose term is whitened per θ component (`goldmine.losses.nres`),
            and 1 otherwise).
        hidden: the widths of the hidden layers.
        activation: a smooth activation (silu, tanh, elu, gelu, softplus).
        clip: the clipping of log-ratios in rolr and rascal, and of log r̂ in the weight w, a finite number > 0.
        weighting: how each row's cross-entropy is weighted (`WEIGHTINGS`): "ratio", by w = 1 + r̂(x|θ), not
            differentiated (for the losses that take a `weight`: carl, alice, cascal, alices),
            so that the cross-entropy weighs errors of log r̂ as the expected squared error under p(x|θ) does
            (the module docstring); "none", w = 1. By default the method's own (`defaults` in the registry:
            "ratio" for alice and alices, whose soft labels keep the weighted gradient bounded, "none" otherwise).
        balance: the weight λ ≥ 0 of the balancing condition of BNRE (the module docstring, `losses.balancing`):
            λ·(mean σ(log r̂) over the rows of one class + over those of the other − 1)² per batch; 0 (the default
            of every method) turns it off, the paper uses 100.
        embedding: a network that summarises x before the ratio network reads it, trained with it: a built-in
            by name ("mlp", "cnn", "deepset", "cnn1d", "gru"), a dict of its name and settings such as
            {"name": "cnn", "channels": [16, 32], "out": 32}, or a torch.nn.Module of your own mapping x
            (n, *x_shape) to (n, k) (`goldmine.embeddings`). None (the default): x itself, flattened.
        **training: settings of the `goldmine.training.Trainer` (epochs, batch_size, lr, seed, ...).

    Raises:
        ValueError: an option of the wrong type or out of its range, naming it (here, not at fit time).

    Example:
        >>> import goldmine as gm, tempfile, os
        >>> data = gm.simulate(gm.simulators.GaltonBoard(), 2000, os.path.join(tempfile.mkdtemp(), "g.h5"),
        ...                    progress=False)
        >>> est = gm.RatioEstimator("alices", epochs=2, progress=False).fit(data)
        >>> est.log_ratio(torch.tensor([[15.0]]), torch.tensor([[0.5]])).shape
        torch.Size([1])
    """

    kind = "ratio"
    capabilities = frozenset({"likelihood", "ratio", "score"})

    def __init__(self, method: str | None = None, alpha: float | None = None, hidden=(128, 128, 128), activation: str = "silu",
                 clip: float = 10.0, embedding=None, weighting: str | None = None, balance: float | None = None,
                 **training):
        if method is not None:
            spec = family_method("ratio", method, "RatioEstimator")
            alpha = spec.defaults.get("alpha", 1.0) if alpha is None else alpha
            weighting = spec.defaults.get("weighting", "none") if weighting is None else weighting
            balance = spec.defaults.get("balance", 0.0) if balance is None else balance
            if balance:
                balance_inputs(spec)  # refuses a method without two classes here, not at fit time
        if balance is not None:
            balance = checks.non_negative_float(balance, "balance")
        if alpha is not None:
            checks.non_negative_float(alpha, "alpha")
        if weighting is not None and weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(map(repr, WEIGHTINGS))} (or None: the method's "
                             f"own); got {weighting!r}.")
        widths = checks.widths(hidden, "hidden")
        check_activation(activation)
        checks.positive_float(clip, "clip")
        self.embedding = embedding_spec(embedding)
        super().__init__(**training)
        self.method, self.alpha, self.hidden, self.activation, self.clip = method, alpha, widths, activation, clip
        self.params = {"method": method, "alpha": alpha, "hidden": list(widths), "activation": activation, "clip": clip,
                       "weighting": weighting}
        self.weighting = weighting
        self.balance = balance
        if balance is not None:  # a method's balance is recorded; None (the method not yet chosen) is set at fit
            self.params["balance"] = balance
        if self.embedding is not None:  # only then, so that the config of a model without one stays as it was
            self.params["embedding"] = embedding_record(self.embedding)

    def _build(self, theta_dim: int, x_dim: int) -> nn.Module:
        return RatioNetwork(theta_dim, x_dim, self.reference_, self.hidden, self.activation,
                            family_method("ratio", self.method, "RatioEstimator").anchored, self.embedding,
                            self.x_shape_)

    def fit(self, data: Dataset | str, device=None) -> "RatioEstimator":
        """Trains on the rows the method reads (both labels; nre, nres: label 0) and returns self.

        Arguments:
            data: the rows (a Dataset, its path, or tensors in memory, `goldmine.memory.as_data`).
            device: where to train and then compute (`goldmine.checks.device`): None or "cpu" (the default),
                "cuda", "mps", a torch.device, or "auto" (an accelerator when present).
        """
        data = self._resolve_method(data, "ratio")  # alice on gold, carl without, nre without runs at θ_ref
        spec = family_method("ratio", self.method, "RatioEstimator")
        if self.alpha is None:  # the method was chosen now: its own weight of the score term
            self.alpha = self.params["alpha"] = spec.defaults.get("alpha", 1.0)
        if self.weighting is None:  # and its own weighting
            self.weighting = self.params["weighting"] = spec.defaults.get("weighting", "none")
        if self.balance is None:  # and its own balancing
            self.balance = self.params["balance"] = spec.defaults.get("balance", 0.0)
        taken = ratio_inputs(spec.loss)
        needed = tuple(dict.fromkeys((*taken, *balance_inputs(spec)))) if self.balance else taken
        if self.weighting == "ratio" and "weight" not in taken:
            raise ValueError(f"weighting='ratio' weighs the cross-entropy of each row by 1 + r̂(x|θ), but the loss of "
                             f"{self.method} takes no weight (carl, alice, cascal and alices do): use weighting='none'.")
        data = self._setup(data, spec.fields, self.method)
        network = self.network_
        train, _ = data.split(self.trainer.validation)
        network.x_norm.fit(b["x"] for b in train.batches(train.scan_rows(), ["x"], label=spec.label, shuffle=False))
        network.theta_norm.fit(b["theta"] for b in train.batches(65536, ["theta"], label=spec.label, shuffle=False))

        def loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
            inputs = _loss_inputs(self, spec, needed, net, batch)
            value = spec.loss(**{k: inputs[k] for k in taken}).mean()
            return value + self.balance * balance_penalty(inputs) if self.balance else value

        fields, monitors = spec.fields, {}
        if spec.label is None:  # rows of both labels: the gold-free cross-entropy between them is a monitor
            fields = tuple(dict.fromkeys((*spec.fields, "label")))
            monitors["xent"] = cross_entropy
        # log r = ±∞ is a correct label (a run outside the support of θ or θ_ref, `data.valid_values`) that every
        # ratio loss reads finitely (sigmoid, clipping); NaN log r never reaches here (reads skip it)
        finite = tuple(f for f in fields if f != "log_r")
        self._train(loss, data, fields, label=spec.label, monitors=monitors, device=device, finite=finite)
        return self

    @staticmethod
    def _forward(net: nn.Module, x: Tensor, theta: Tensor, with_score: bool) -> tuple[Tensor, Tensor | None]:
        if not with_score:
            return net(x, theta), None
        return with_theta_gradient(net, x, theta, create_graph=net.training)

    def log_ratio(self, x, theta) -> Tensor:
        """log r̂(x|θ, θ_ref): x (n, x_dim), θ (n, theta_dim) or one point → (n,)."""
        net = self._check_fitted()
        x, theta = self._check_x_theta(x, theta)
        with torch.no_grad():
            if net.anchored:
                return net(x, theta)
            return net(x, theta) - net(x, net.reference.expand_as(theta))

    def log_likelihood_terms(self, x, theta) -> Tensor:
        """log p̂(x|θ) up to a constant in θ: log r̂(x|θ, θ_ref), (n,) (`goldmine.inference.surrogate`)."""
        return self.log_ratio(x, theta)

    def log_likelihood_table(self, x, theta) -> Tensor:
        """log r̂(x_i|θ_j, θ_ref) for every pair: x (n, x_dim), θ (m, theta_dim) → (m, n), with the
        reference term g(x_i, θ_ref) evaluated once per x_i rather than once per pair, and the network's first
        layer split into its x and θ parts (`RatioNetwork.table`)."""
        net = self._check_fitted()
        x = self._check_x(x)
        theta = self._on_device(checks.rows(theta, self.theta_dim_, "theta", dtype=torch.float32))
        n = len(x)
        with torch.no_grad():
            s = self._features_of(net, x)  # the embedding once per x, not once per pair
            return net.table(s, theta) - net._h(s, net.reference.expand(n, -1))

    def _features_of(self, net: nn.Module, x: Tensor) -> Tensor:
        """net.features(x), remembered for the last x when the network has an embedding: an MLE or a
        posterior evaluates ℓ(θ) of the same observations hundreds of times, and a CNN over a hundred
        images costs far more than the rest. The key is x's bytes and the network with the versions
        of its weights, so a refit or an in-place change of the weights is never served stale features."""
        if net.embedding is None:
            return net.features(x)
        x = x.contiguous()
        key = (id(net), tuple(x.shape), hashlib.blake2b(x.cpu().numpy().tobytes(), digest_size=16).digest(),
               tuple(p._version for p in net.parameters()))
        cached = getattr(self, "_features_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, net.features(x))
            self._features_cache = cached
        return cached[1]

    def log_ratio_evidence(self, x, theta) -> Tensor:
        """The unanchored methods only (nre, nres): log r̂(x, θ) ≈ log p(x|θ)/p(x), so that
        log p(θ|x) = log p(θ) + log r̂(x, θ): → (n,)."""
        net = self._check_fitted()
        if net.anchored:
            raise ValueError(f"{self.method} learns p(x|θ)/p(x|θ_ref), not p(x|θ)/p(x): train an unanchored method "
                             "such as method='nre'.")
        x, theta = self._check_x_theta(x, theta)
        with torch.no_grad():
            return net(x, theta)

    def score(self, x, theta) -> Tensor:
        """∇_θ log r̂(x|θ) = ∇_θ log p̂(x|θ): x (n, x_dim), θ (n, theta_dim) or one point → (n, theta_dim)."""
        net = self._check_fitted()
        x, theta = self._check_x_theta(x, theta)
        return self._forward(net, x, theta, True)[1].detach()


CARL = "Cranmer, Pavez, Louppe, arXiv:1506.02169"
MINING = "Brehmer, Louppe, Pavez, Cranmer, PNAS 117 (2020) 5242, arXiv:1805.12244"
ALICE = "Stoye, Brehmer, Louppe, Pavez, Cranmer, arXiv:1808.00973"

register_method(ratio_method("carl", losses.carl, "classifier between runs at θ and at θ_ref", CARL, repaired=True))
register_method(ratio_method("rolr", losses.rolr, "regression on the joint ratio r(x,z)", MINING))
# alice and alices weigh each row's cross-entropy by 1 + r̂ (the module docstring; measured in benchmarks/README.md,
# "The 10× target with the ratio weighting"); carl, with hard labels, diverged with it, and cascal keeps w = 1 alike
WEIGHTED = {"weighting": "ratio"}
register_method(ratio_method("alice", losses.alice, "cross-entropy against soft labels 1/(1+r(x,z))", ALICE,
                             defaults=WEIGHTED))
register_method(ratio_method("cascal", losses.cascal, "carl + α·score term", MINING, repaired=True))
# rolr's squared ratios reach e^(2·clip): the score term needs a larger weight to count beside them
# (α = 10 against 1: benchmarks/README.md, "Measurements behind the defaults")
register_method(ratio_method("rascal", losses.rascal, "rolr + α·score term", MINING, defaults={"alpha": 10.0}))
register_method(ratio_method("alices", losses.alices, "alice + α·score term", ALICE, defaults=WEIGHTED))
register_method(ratio_method("nre", losses.nre, "amortized ratio p(x|θ)/p(x), joint vs shuffled pairs",
                             "Hermans, Begy, Louppe, arXiv:1903.04057", label=0, anchored=False))
# nre + the score term: every row drawn at its θ ~ prior, so it trains on the layout "prior" with gold (no θ_ref);
# the term is whitened by the joint score's spread per component (`losses.nres`), α = 0.1: against nre and the
# unwhitened term on Galton, Weinberg and Lotka–Volterra (benchmarks/README.md, "nres", "Whitening the score term")
register_method(ratio_method("nres", losses.nres, "nre + α·score term, p(x|θ)/p(x) without θ_ref",
                             "Hermans, Begy, Louppe, arXiv:1903.04057; score term as in arXiv:1805.12244",
                             label=0, anchored=False, defaults={"alpha": 0.1}))
