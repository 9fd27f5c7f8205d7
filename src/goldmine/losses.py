"""Every loss of goldmine, one function each, named after its method. They return one value per row.

Notation: y is the label (0: x drawn at θ, 1: x drawn at θ_ref), a = log r̂(x|θ) the surrogate,
b = log r(x, z|θ, θ_ref) the mined joint log-ratio, t = t(x, z|θ) the mined joint score and
t̂ = ∇_θ log r̂(x|θ) (or ∇_θ log p̂(x|θ)), and w a weight per row of a cross-entropy, not differentiated
(`goldmine.estimators.ratio.ratio_weight`; 1 by default). The classifier output of carl and alice is
ŝ = 1/(1 + r̂), the probability that x was drawn at θ_ref; then log ŝ = −softplus(a) and
log(1 − ŝ) = −softplus(−a), so cross-entropies never leave log space. Each function's docstring
gives its formula; which method uses which loss, on which rows, is the method table of
`goldmine.estimators.registry` (`goldmine list methods`).

The ratio losses name their arguments after what the ratio estimator hands them (see
`goldmine.estimators.ratio.RATIO_INPUTS`): log_r_hat (a), score_hat (t̂), y, log_r (b), score (t),
log_r_hat_marginal, alpha, clip and weight. A new ratio loss is a function with such arguments plus one
line that registers it (`register_method(ratio_method(...))`).

The score term only counts rows drawn at θ ((1−y)): t(x, z|θ) is an unbiased label of
∇_θ log p(x|θ) for x ~ p(x|θ), not for x ~ p(x|θ_ref).

References:
    Brehmer, Louppe, Pavez, Cranmer, PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
    Stoye, Brehmer, Louppe, Pavez, Cranmer, https://arxiv.org/abs/1808.00973 (ALICE)
    Hermans, Begy, Louppe, https://arxiv.org/abs/1903.04057 (amortized NRE)
    Delaunoy, Hermans, Rozet, Wehenkel, Louppe, https://arxiv.org/abs/2208.13624 (BNRE, `balancing`)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import softplus


def carl(log_r_hat: Tensor, y: Tensor, weight: Tensor | float = 1.0) -> Tensor:
    """w·[y·softplus(a) + (1−y)·softplus(−a)], the binary cross-entropy of ŝ = 1/(1 + r̂) against the label y,
    weighted by w (1, or (n,)): (n,), (n,) → (n,)."""
    return weight * (y * softplus(log_r_hat) + (1 - y) * softplus(-log_r_hat))


def nre(log_r_hat: Tensor, log_r_hat_marginal: Tensor) -> Tensor:
    """softplus(−d(x, θ)) + softplus(d(x, θ')): the cross-entropy of a classifier between pairs from the
    joint p(θ, x) (label 1) and pairs from the product of marginals p(θ)p(x) (label 0, θ' shuffled),
    logits d = log r̂(x, θ): (n,), (n,) → (n,). Minimised by d = log p(x|θ)/p(x)."""
    return softplus(-log_r_hat) + softplus(log_r_hat_marginal)


def nres(log_r_hat: Tensor, log_r_hat_marginal: Tensor, score_hat: Tensor, score: Tensor, alpha: float) -> Tensor:
    """nre + α·Σ_j (∂_j d(x, θ) − t_j(x, z|θ))² / v_j, the score term whitened per θ component:
    (n,), (n,), (n, d), (n, d) → (n,).

    softplus(−d(x, θ)) + softplus(d(x, θ')) + α·Σ_j (∂d/∂θ_j − t_j)² / v_j, with θ' shuffled within the
    batch as in `nre`. The cross-entropy is minimised by d(x, θ) = log p(x|θ)/p(x); p(x) does not depend
    on θ, so there ∇_θ d = ∇_θ log p(x|θ). For x, z ~ p(x, z|θ) the joint score is an unbiased label of
    it, E[t(x, z|θ)|x, θ] = ∇_θ log p(x|θ), so the squared error is minimised by the same d (up to a
    term constant in the network): the score term adds information without moving the optimum, as in
    alices and scandal. Every row is drawn at its θ (the joint), so the score term counts every row.
    No run at θ_ref is needed.

    Whitening: v_j of row i is the mean of t_j² over the other rows of the batch, (Σ_k t_kj² − t_ij²)/(n − 1),
    not differentiated. It puts every component in units of the joint score's own spread, so that α does
    not depend on the scale of θ_j (θ_j → c·θ_j divides t_j, ∂_j d and √v_j alike) and one α serves
    simulators whose scores differ by orders of magnitude, and components of one simulator that do.
    Leaving row i out makes v_ij a function of the other rows only, which are independent of row i: the
    expected gradient of the term is then E[1/v_j] times that of the unwhitened (∂_j d − t_j)², so the
    minimiser stays E[t|x, θ] (a v that included row i would shrink ∂_j d towards 0 on rows with a large
    |t_ij|: a biased target). A component whose v is 0 (a batch of one row, or t_j = 0 on every other row)
    gets no score term.
    """
    squares = score.detach().double() ** 2  # float64: the sum less one large row must not cancel to noise
    others = (squares.sum(0, keepdim=True) - squares) / max(len(score) - 1, 1)  # (n, d): the other rows' mean t_j²
    inverse = torch.where(others > 0, 1 / others.clamp(min=1e-300), torch.zeros_like(others)).to(score.dtype)
    return nre(log_r_hat, log_r_hat_marginal) + alpha * (((score_hat - score) ** 2) * inverse).sum(-1)


def balancing(first: Tensor, second: Tensor) -> Tensor:
    """(mean σ(d) over the rows of the first class + mean σ(d) over those of the second − 1)², one value per batch:
    the penalty of balanced neural ratio estimation (BNRE, Delaunoy et al.), (n₁,), (n₂,) → () (0 when a class has
    no rows in the batch).

    d = log r̂ is the logit of a classifier between two classes of equal prior weight, the first drawn from a
    density p₁ and the second from p₂ (carl: x ~ p(x|θ) and x ~ p(x|θ_ref) at the same θ ~ prior; nre: pairs (x, θ)
    from the joint p(x, θ) and from the product of the marginals p(x)p(θ)), and σ(d) = r̂/(1 + r̂) its probability
    of the first class. A classifier is balanced when

        E_{p₁}[σ(d)] + E_{p₂}[σ(d)] = 1,

    which the Bayes-optimal one, σ(d) = p₁/(p₁ + p₂), satisfies: ∫(p₁ + p₂)·p₁/(p₁ + p₂) = ∫p₁ = 1. The loss
    λ·balancing adds to a cross-entropy therefore keeps its minimiser, the true ratio, and among imperfect
    classifiers prefers the balanced ones; Delaunoy et al. argue that a balanced classifier is on average no more
    confident than the Bayes-optimal one (its errors lean toward the prior), so its credible and confidence
    regions err toward being too wide rather than too narrow. The batch estimate is squared as in the
    paper (λ = 100 there): its expectation is the squared excess plus the variance of the batch means,
    Var(σ(d))·(1/n₁ + 1/n₂) per class, a term that rewards a σ(d) varying little over the rows, i.e. a flatter log r̂,
    the more so the smaller the batches.

    Example:
        >>> float(balancing(torch.tensor([0.0, 0.0]), torch.tensor([0.0])))  # σ = ½ everywhere: balanced
        0.0
        >>> round(float(balancing(torch.tensor([2.0]), torch.tensor([2.0]))), 4)  # 2·σ(2) − 1 = 0.7616, squared
        0.58
    """
    if len(first) == 0 or len(second) == 0:
        return first.new_zeros(())
    return (torch.sigmoid(first).mean() + torch.sigmoid(second).mean() - 1) ** 2


def rolr(log_r_hat: Tensor, log_r: Tensor, y: Tensor, clip: float = 10.0) -> Tensor:
    """y·(r̂ − r)² + (1−y)·(1/r̂ − 1/r)²: the squared error of r̂ against r on rows at θ_ref and of 1/r̂
    against 1/r on rows at θ: (n,) each → (n,).

    Written as e^{2b}·expm1(a − b)², so that neither r̂ nor r is formed. Both log-ratios are clipped to
    [−clip, clip] first: beyond e^10 a squared ratio only feeds the heavy tail of the joint ratio into the
    gradient (and overflows float32 soon after), while the optimum inside the range is unchanged.
    """
    a, b = log_r_hat.clamp(-clip, clip), log_r.clamp(-clip, clip)
    at_ref = torch.exp(2 * b) * torch.expm1(a - b) ** 2
    at_theta = torch.exp(-2 * b) * torch.expm1(b - a) ** 2
    return y * at_ref + (1 - y) * at_theta


def alice(log_r_hat: Tensor, log_r: Tensor, weight: Tensor | float = 1.0) -> Tensor:
    """w·[s·softplus(a) + (1−s)·softplus(−a)]: the cross-entropy of ŝ against the soft label
    s = 1/(1 + r(x, z)) = sigmoid(−b), weighted by w (1, or (n,)): (n,), (n,) → (n,)."""
    s = torch.sigmoid(-log_r)
    return weight * (s * softplus(log_r_hat) + (1 - s) * softplus(-log_r_hat))


def score_term(score_hat: Tensor, score: Tensor, y: Tensor) -> Tensor:
    """(1 − y)·‖t̂ − t‖² on the rows drawn at θ: (n, d), (n, d), (n,) → (n,)."""
    return (1 - y) * ((score_hat - score) ** 2).sum(-1)


def rascal(log_r_hat, score_hat, log_r, score, y, alpha: float, clip: float = 10.0) -> Tensor:
    """rolr + α·(1 − y)·‖t̂ − t‖²."""
    return rolr(log_r_hat, log_r, y, clip) + alpha * score_term(score_hat, score, y)


def cascal(log_r_hat, score_hat, score, y, alpha: float, weight: Tensor | float = 1.0) -> Tensor:
    """w·carl + α·(1 − y)·‖t̂ − t‖² (w weighs the cross-entropy only)."""
    return carl(log_r_hat, y, weight) + alpha * score_term(score_hat, score, y)


def alices(log_r_hat, score_hat, log_r, score, y, alpha: float, weight: Tensor | float = 1.0) -> Tensor:
    """w·alice + α·(1 − y)·‖t̂ − t‖² (w weighs the cross-entropy only)."""
    return alice(log_r_hat, log_r, weight) + alpha * score_term(score_hat, score, y)


def sally(score_hat: Tensor, score_ref: Tensor) -> Tensor:
    """‖t̂(x) − t(x, z|θ_ref)‖², on the rows drawn at θ_ref: (n, d), (n, d) → (n,)."""
    return ((score_hat - score_ref) ** 2).sum(-1)


def nle(log_p_hat: Tensor) -> Tensor:
    """−log p̂(x|θ): (n,) → (n,)."""
    return -log_p_hat


def scandal(log_p_hat: Tensor, score_hat: Tensor, score: Tensor, alpha: float) -> Tensor:
    """−log p̂(x|θ) + α·‖∇_θ log p̂(x|θ) − t(x, z|θ)‖² on rows drawn at θ: (n,), (n, d), (n, d) → (n,)."""
    return -log_p_hat + alpha * ((score_hat - score) ** 2).sum(-1)


def npe(log_q: Tensor) -> Tensor:
    """−log q(θ|x) of the posterior flow: (n,) → (n,)."""
    return -log_q
