"""The choice of flow of the flow estimators (npe, nle): one place for what `flow="auto"` adds to an `Estimator`.

With flow="auto" a fit trains each candidate of `goldmine.nn.AUTO_FLOWS` (splines and an affine flow) and keeps the
one of the lower validation loss, the held-out −log q up to a constant the same for both (`goldmine.nn.pick_flow`);
`flow_` names the flow fitted, the saved record carries it, and a fit that starts from earlier weights
(`start_from`, sequential rounds) keeps their flow.
"""

from __future__ import annotations

from torch import Tensor

from ..nn import flow_candidates, pick_flow, restore_auto


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
