"""The choice of flow of the flow estimators (npe, nle): one place for what `flow="auto"` adds to an `Estimator`.

With flow="auto" a fit trains each candidate of `goldmine.nn.AUTO_FLOWS` (splines and an affine flow) and keeps the
one of the lower validation loss, the held-out −log q up to a constant the same for both (`pick_flow`);
`flow_` names the flow fitted, the saved record carries it, and a fit that starts from earlier weights
(`start_from`, sequential rounds) keeps their flow.
"""

from __future__ import annotations

import math

from torch import Tensor

from ..nn import AUTO_FLOWS, flow_activation


class FlowChoice:
    """Mixin placed before `Estimator` in a flow estimator's bases; the estimator names in `_flow_state` the
    attributes one fit sets (beside `network_` and `history_`) and calls `_fit_flows(fit_one)` from `fit`."""

    _start_flow: str | None = None  # the flow of the weights `start_from` gave
    _flow_state: tuple[str, ...] = ()

    def start_from(self, other):
        """As `Estimator.start_from`; the next fit keeps the flow of `other` (no choice under flow="auto")."""
        super().start_from(other)
        self._start_flow = other.flow_
        return self

    def _fitted_record(self) -> dict:
        return {**super()._fitted_record(), "flow": self.flow_}

    @classmethod
    def _restore(cls, config: dict, state: dict[str, Tensor]):
        return restore_auto(super()._restore.__func__, cls, config, state)

    def _fit_flows(self, fit_one) -> None:
        """Fits each candidate flow in turn (`flow_` set before `fit_one()`) and keeps the fitted attributes of the
        one `pick_flow` chooses; `fit_one()` returning False tries no further candidate."""
        start = self._start_flow if self._start_state is not None else None
        names = ("flow_", "network_", "history_") + self._flow_state
        fits = []
        for flow in flow_candidates(self.flow, start):
            self.flow_ = flow
            more = fit_one()
            fits.append({name: getattr(self, name) for name in names})
            if more is False:
                break
        for name, value in fits[pick_flow([(f["flow_"], f["history_"]) for f in fits])].items():
            setattr(self, name, value)


def flow_candidates(flow: str, start: str | None) -> tuple[str, ...]:
    """The flows a fit tries: the one named, the `AUTO_FLOWS` for "auto", or only `start`, the flow of the
    weights the fit starts from (`Estimator.start_from`)."""
    if start is not None:
        return (start,)
    return tuple(f for f, _ in AUTO_FLOWS) if flow == "auto" else (flow,)


def pick_flow(fits: list[tuple[str, object]]) -> int:
    """The index of the fit to keep among (flow, history) pairs: the lowest validation loss of the weights kept
    (`kept_val_loss`, the held-out −log q up to a constant, so the lower E KL); the first fit when a loss is missing
    or not finite (no validation rows)."""
    losses = [h.get("kept_val_loss") if isinstance(h, dict) else None for _, h in fits]
    if any(v is None or not math.isfinite(v) for v in losses):
        return 0
    return min(range(len(fits)), key=lambda i: losses[i])


def restore_auto(restore, cls, config: dict, state: dict):
    """`restore(cls, config, state)` (the base class's `_restore`) for a flow estimator, whose saved flow="auto"
    model rebuilds the flow its fit chose (config["fitted"]["flow"]) and then keeps the settings as given."""
    params = config["params"]
    if params.get("flow") != "auto":
        return restore(cls, config, state)
    chosen = config["fitted"]["flow"]
    concrete = {**params, "flow": chosen, "activation": flow_activation("auto", chosen, params.get("activation"))}
    est = restore(cls, {**config, "params": concrete}, state)
    est.flow, est.activation, est.flow_ = "auto", params.get("activation"), chosen
    est.params.update(flow="auto", activation=params.get("activation"))
    return est
