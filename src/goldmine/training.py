"""The one Trainer that fits every estimator of goldmine.

An estimator hands the Trainer its network and a loss: a function of (network, batch) → a scalar,
where a batch is a dict of field → tensor. The rows come in one of two forms:

- a row source (`RowSource`, `Trainer.fit`): anything with `len()`, `split(fraction)` and
  `tensors(fields, label=...)`. A `goldmine.Dataset` is one, and streams from its file when it is
  large (`StreamingRowSource`: it also has `batches(...)`); ALFI's meta-training problems are
  another. The Trainer splits off the validation rows, checks that the fields the loss reads are
  finite, and shuffles the training rows every epoch from its seed.
- plain batch iterables (`Trainer.fit_batches`): re-iterable collections of batches, such as a
  list or a torch DataLoader, one for training and one for validation.

Where a method validates with another loss than it trains with (ALFI validates on fixed draws,
without gradients), it passes that loss as `val_loss`. The Trainer owns the rest: AdamW with a
cosine learning-rate schedule, early stopping that restores the best weights, gradient clipping,
a progress bar, and a history of the losses. Training never silently keeps weights it cannot
trust: non-finite values in the rows, or a loss that becomes non-finite, raise a `TrainingError`
that says how many rows or which step, and what to do. A fixed seed gives the same result.
Where the Trainer sits among the layers, and the estimators' side of fitting: docs/architecture.md.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import checks

LossFn = Callable[[nn.Module, dict[str, Tensor]], Tensor]
#: rows per batch when the Trainer evaluates the validation loss of a row source
EVAL_BATCH = 4096
#: rows per read when the Trainer counts and checks a streamed row source
SCAN_ROWS = 65536


class TrainingError(RuntimeError):
    """Training cannot give a network to keep: the rows hold non-finite values, or the loss became non-finite.

    Attributes:
        rows: the number of rows with non-finite values (None when the loss itself became non-finite).
        history: the Trainer's history up to the failure ({} when training did not start).
    """

    def __init__(self, message: str, rows: int | None = None, history: dict | None = None):
        super().__init__(message)
        self.rows, self.history = rows, history or {}


@runtime_checkable
class RowSource(Protocol):
    """The rows the Trainer reads with `Trainer.fit`: a `goldmine.Dataset`, ALFI's problems, or a table of yours.

    A row holds one value of every field (θ, x, a label, gold, ...); `tensors` stacks them. Labels
    tell apart rows drawn at θ (0) and at θ_ref (1); a source without labels raises a ValueError
    when asked for the rows of one. Messages name a source by its `path` attribute if it has one (a
    Dataset's file), else by `str(source)`.
    """

    def __len__(self) -> int:
        """The number of rows."""

    def split(self, validation: float) -> tuple[RowSource, RowSource]:
        """(training rows, validation rows), the latter about the fraction `validation` of the rows."""

    def tensors(self, fields: Sequence[str], label: int | None = None) -> dict[str, Tensor]:
        """{field: (rows, ...) tensor} for every row, or for the rows of `label` only; all of one length."""


@runtime_checkable
class StreamingRowSource(RowSource, Protocol):
    """A row source too large to hold in memory, read in batches (a large `goldmine.Dataset`)."""

    def batches(self, batch_size: int, fields: Sequence[str], *, label: int | None = None, shuffle: bool = True,
                seed: int = 0) -> Iterator[dict[str, Tensor]]:
        """One pass over the rows (of `label`) in batches of at most `batch_size`, shuffled from `seed`."""


#: the initial learning rate when the Trainer's lr is None
DEFAULT_LR = 2e-3


def default_batch_size(rows: int, smallest: int = 64) -> int:
    """The batch size for `rows` training rows: max(smallest, min(128, rows // 64), rows // 90).

    Below about 8,000 rows the smallest batch gives enough optimisation steps for the 50 epochs of
    the schedule (750 at 10³ runs, where a batch of 256 gave 200 and left the gold methods far from
    their optimum); from about 11,500 rows on, about 90 steps per epoch keep large data sets fast. The
    measurements behind the rule are in benchmarks/README.md ("Measurements behind the defaults").

    Example:
        >>> default_batch_size(900), default_batch_size(9000), default_batch_size(90_000)
        (64, 128, 1000)
    """
    return max(smallest, min(128, rows // 64), rows // 90)


@dataclass
class Trainer:
    """Training settings and the training loop.

    The weights kept are the final ones of the schedule, or with `patience` those of the epoch with
    the best validation loss. A fit that meets non-finite values raises a `TrainingError` instead of
    returning weights: an estimator's `fit` raises it in turn, so nothing is saved (the command line
    saves a model only after its fit returned) and a previous model stays in place.

    Arguments:
        epochs: the maximum number of passes over the training rows.
        batch_size: rows per optimisation step. None (the default) chooses it from the number R of
            training rows, `default_batch_size`: max(min_batch_size, min(128, R // 64), R // 90), so
            that small data sets get enough optimisation steps (about 750 at 10³ runs) and large ones
            about 90 steps per epoch.
        lr: the initial learning rate of AdamW (> 0); it decays on a cosine to lr·lr_final. None (the
            default): 2e-3.
        min_batch_size: the smallest batch that `batch_size=None` chooses; 64, and 128 for the flows
            (nle, scandal, npe) and sally, whose families set it.
        lr_final: the final learning rate as a fraction of lr, in [0, 1].
        weight_decay: AdamW's decoupled weight decay (≥ 0).
        validation: the fraction of rows held out for validation (and early stopping) by `fit`.
        keep: which weights `fit` keeps: "final" (the default), the end of the cosine schedule; "best",
            those of the epoch with the lowest validation loss; or the name of a validation monitor
            the estimator offers (the ratio family's "xent": the classification cross-entropy between
            the rows drawn at θ and at θ_ref, a proper scoring rule for every ratio surrogate that
            needs no gold), the epoch where it is lowest. The history records what was kept and why
            (`kept`, `kept_epoch`, `kept_by`, `kept_why`, `kept_val_loss`); the measurement behind the default is in benchmarks/README.md
            ("Model selection").
        patience: early stopping: stop after this many epochs without a better validation loss (of the
            monitor `keep` names, if any) and restore the weights of the best epoch. None (the default) runs the whole cosine schedule
            and keeps its final, annealed weights: with noisy labels (joint ratios and scores) the
            validation loss is dominated by label noise and its minimum often falls on an early epoch
            of a still-improving network, whose weights then err more than the final ones
            (benchmarks/README.md, "Measurements behind the defaults").
        clip_grad: the maximal gradient norm per step (> 0; inf: no clipping).
        seed: an integer from 0 to 2**32 − 1; seeds the initialisation (when the estimator builds its
            network) and the shuffling of
            `fit` (a batch iterable of `fit_batches` shuffles, or not, by itself).
        in_memory_rows: data sets up to this many rows are read once into memory; larger ones are
            streamed from the file in chunks every epoch (0: always streamed); so are data sets whose rows
            together hold more than IN_MEMORY_VALUES numbers (2²⁸: e.g. 65536 images of 64 × 64).
        progress: show a progress bar.

    Raises:
        ValueError: a setting of the wrong type or out of its range, naming it (when the Trainer, and so
            the estimator, is built).
    """

    epochs: int = 50
    batch_size: int | None = None
    lr: float | None = None
    min_batch_size: int = 64
    lr_final: float = 0.01
    weight_decay: float = 1e-4
    validation: float = 0.1
    keep: str = "final"
    patience: int | None = None
    clip_grad: float = 5.0
    seed: int = 0
    in_memory_rows: int = 2_000_000
    progress: bool = True
    history: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        """Checks every setting now, so that a bad one fails when the estimator is built, not at fit time."""
        checks.positive_int(self.epochs, "epochs")
        if self.batch_size is not None:
            checks.positive_int(self.batch_size, "batch_size")
        checks.positive_int(self.min_batch_size, "min_batch_size")
        if self.lr is not None:
            checks.positive_float(self.lr, "lr")
        checks.real_between(self.lr_final, "lr_final", 0, 1)
        checks.non_negative_float(self.weight_decay, "weight_decay")
        checks.fraction(self.validation, "validation")
        if not isinstance(self.keep, str) or not self.keep:
            raise ValueError(f'keep must be "final", "best" or the name of a validation monitor; got {self.keep!r}.')
        if self.patience is not None:
            checks.positive_int(self.patience, "patience")
        checks.positive_float(self.clip_grad, "clip_grad", infinite=True)
        checks.seed(self.seed, "seed")
        checks.non_negative_int(self.in_memory_rows, "in_memory_rows")
        checks.flag(self.progress, "progress")

    def settings(self) -> dict:
        """The settings as plain JSON values (for config.json)."""
        out = asdict(self)
        out.pop("history")
        return out

    def fit(self, network: nn.Module, loss: LossFn, data: RowSource, fields: Sequence[str], label: int | None = None,
            desc: str = "train", *, val_loss: LossFn | None = None, finite: Sequence[str] | None = None,
            monitors: dict[str, LossFn] | None = None, device=None) -> dict:
        """Trains `network` in place on the rows of `data` and returns the history.

        Arguments:
            network: the module to train.
            loss: (network, batch) → scalar loss, batch a dict with `fields`.
            data: a `RowSource`; the part `split(validation)` holds out validates. A
                `StreamingRowSource` larger than `in_memory_rows` is streamed every epoch, any other
                source is read into memory once.
            fields: the fields the loss reads.
            label: train only on the rows of this label (0: drawn at θ, 1: drawn at θ_ref).
            desc: the name of the fit in the progress bar and in messages (the method).
            val_loss: the validation loss, if it differs from `loss`; evaluated with the network in
                eval mode, batches of up to 4096 rows.
            finite: the fields that must be finite in every row; all of `fields` by default. (ALFI's
                observations may hold a failed run's NaN, which its network leaves out by design.)
            monitors: further validation criteria {name: loss}, each evaluated on the validation rows
                every epoch (history["val_<name>"]); `keep` may name one to choose the weights by.
            device: where to train (`checks.device`): None or "cpu" (the default), "cuda", "mps", a
                torch.device, or "auto" (an accelerator when present). The network is moved there and stays
                there; every batch is moved there as it is used (the rows stay where they are).

        Raises:
            ValueError: no rows (of `label`) to train or validate on, or a device this machine does not have.
            TrainingError: some rows hold NaN or ±inf in a field of `finite` (before training starts,
                with the count per field), or the loss became non-finite.
        """
        if not isinstance(data, RowSource):
            raise TypeError(f"data must be a row source (len(), split(fraction), tensors(fields, label=...)) such as "
                            f"a goldmine.Dataset; got {type(data).__name__}. For iterables of batches use "
                            "Trainer.fit_batches(network, loss, train_batches, val_batches).")
        device = checks.device(device)
        fields = tuple(fields)
        finite = fields if finite is None else tuple(finite)
        if set(finite) - set(fields):
            raise ValueError(f"finite names fields the loss does not read: {sorted(set(finite) - set(fields))}.")
        train, val = data.split(self.validation)
        train_rows = _Rows(train, fields, label, self.in_memory_rows, finite)
        val_rows = _Rows(val, fields, label, self.in_memory_rows, finite)
        where = _name(data)
        if train_rows.count == 0 or val_rows.count == 0:
            raise ValueError(f"{where} has no rows{'' if label is None else f' of label {label}'} to train on.")
        _check_finite(train_rows, val_rows, where, desc)
        batch = self.batch_size or default_batch_size(train_rows.count, self.min_batch_size)
        history = self._loop(
            network, loss, val_loss or loss,
            train=lambda epoch: train_rows.batches(batch, seed=self.seed * 100_003 + epoch),
            val=lambda: val_rows.batches(EVAL_BATCH, seed=None),
            steps_per_epoch=max(1, math.ceil(train_rows.count / batch)),
            desc=desc, monitors=monitors, device=device,
        )
        history["batch_size"] = batch
        return history

    def fit_batches(self, network: nn.Module, loss: LossFn, train: Iterable, validation: Iterable,
                    desc: str = "train", *, val_loss: LossFn | None = None, device=None) -> dict:
        """Trains `network` in place on batch iterables and returns the history.

        Every epoch iterates `train` once, in its own order, and then `validation`; the Trainer's
        `validation` fraction, `batch_size`, `in_memory_rows` and the shuffling seed play no part.

        Arguments:
            network: the module to train.
            loss: (network, batch) → scalar loss.
            train, validation: re-iterable collections of batches (a list, a torch DataLoader); a
                batch is a dict of tensors with a leading row dimension (or a tuple or tensor), whose
                row count weights its loss in the epoch's mean.
            desc: the name of the fit in the progress bar and in messages.
            val_loss: the validation loss, if it differs from `loss`.
            device: where to train, as in `fit`; every batch (a dict, tuple or tensor) is moved there.

        Raises:
            TypeError: an iterator or generator, which a second epoch would find empty.
            ValueError: no training or validation batches.
            TrainingError: the loss became non-finite.

        Example:
            >>> net = nn.Linear(1, 1)
            >>> batches = [{"x": torch.randn(32, 1)} for _ in range(4)]
            >>> mse = lambda net, b: (net(b["x"]) - 2 * b["x"]).pow(2).mean()
            >>> h = Trainer(epochs=3, progress=False).fit_batches(net, mse, batches, batches[:1])
            >>> len(h["train_loss"]), len(h["val_loss"])
            (3, 3)
        """
        device = checks.device(device)
        for name, batches in (("train", train), ("validation", validation)):
            if iter(batches) is batches:
                raise TypeError(f"{name} is an iterator, which one epoch would exhaust: pass a re-iterable collection "
                                "of batches (a list, a torch DataLoader).")
        steps = len(train) if hasattr(train, "__len__") else sum(1 for _ in train)
        if steps == 0 or not any(True for _ in validation):
            raise ValueError(f"{desc}: {'train' if steps == 0 else 'validation'} holds no batches.")
        return self._loop(network, loss, val_loss or loss, train=lambda epoch: iter(train),
                          val=lambda: iter(validation), steps_per_epoch=steps, desc=desc, device=device)

    def _loop(self, network: nn.Module, loss: LossFn, val_loss: LossFn, train: Callable[[int], Iterable],
              val: Callable[[], Iterable], steps_per_epoch: int, desc: str,
              monitors: dict[str, LossFn] | None = None, device: torch.device | None = None) -> dict:
        """The epochs: `train(epoch)` gives the epoch's training batches, `val()` the validation batches.

        Tracks the best epoch of the validation loss ("loss") and of every monitor; `self.best_states`
        holds {criterion: (epoch, value, state_dict)} afterwards (for measurements that compare rules)."""
        monitors = dict(monitors or {})
        if device is not None:  # on the CPU, tensors already there are not copied: the default's numbers stay
            network.to(device)
            train_batches, val_batches = train, val
            train = lambda epoch: (to_device(b, device) for b in train_batches(epoch))  # noqa: E731
            val = lambda: (to_device(b, device) for b in val_batches())  # noqa: E731
        if self.keep not in ("final", "best", *monitors):
            offered = ", ".join(f'"{k}"' for k in monitors) or "none"
            raise ValueError(f'{desc}: keep={self.keep!r} names no validation monitor of this estimator (offered: '
                             f'{offered}); use "final", "best" or one of these.')
        select = self.keep if self.keep in monitors else "loss"
        steps = self.epochs * steps_per_epoch
        lr = DEFAULT_LR if self.lr is None else self.lr
        optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr * self.lr_final)

        history = {"train_loss": [], "val_loss": [], "lr": [], "seconds": [], "best_epoch": None, "stop_reason": "epochs"}
        self.history = history
        best_state, since_best = copy.deepcopy(network.state_dict()), 0
        self.best_states = {}
        for name in monitors:
            history[f"val_{name}"] = []
        bar = tqdm(range(self.epochs), desc=desc, disable=not self.progress, dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for epoch in bar:
                network.train()
                total, count = 0.0, 0
                for step, batch in enumerate(train(epoch)):
                    value = loss(network, batch)
                    if not torch.isfinite(value):
                        where = f"epoch {epoch + 1}, step {step + 1}"
                        history["stop_reason"] = f"non-finite loss ({value.item()}) at {where}"
                        raise TrainingError(
                            f"{desc}: the training loss became {value.item()} at {where}, "
                            f"so training stopped and kept no weights. Lower the learning rate (lr={lr}) or check "
                            "the data for extreme values.", history=history)
                    optimizer.zero_grad()
                    value.backward()
                    nn.utils.clip_grad_norm_(network.parameters(), self.clip_grad)
                    optimizer.step()
                    schedule.step()
                    n = _rows_in(batch)
                    total += value.item() * n
                    count += n
                val_value = self.evaluate(network, val_loss, val())
                if not math.isfinite(val_value):
                    history["stop_reason"] = f"non-finite validation loss ({val_value}) at epoch {epoch + 1}"
                    raise TrainingError(
                        f"{desc}: the validation loss became {val_value} at epoch {epoch + 1}, so training stopped "
                        f"and kept no weights. Lower the learning rate (lr={lr}) or check the validation data "
                        "for extreme values.", history=history)
                history["train_loss"].append(total / max(count, 1))
                history["val_loss"].append(val_value)
                history["lr"].append(schedule.get_last_lr()[0])
                history["seconds"].append(time.perf_counter() - start)
                bar.set_postfix(loss=f"{total / max(count, 1):.4g}", val=f"{val_value:.4g}")
                values = {"loss": val_value}
                for name, monitor in monitors.items():
                    values[name] = self.evaluate(network, monitor, val())
                    history[f"val_{name}"].append(values[name])
                for name, value in values.items():
                    if value < self.best_states.get(name, (0, math.inf))[1]:
                        self.best_states[name] = (epoch + 1, value, copy.deepcopy(network.state_dict()))
                history["best_epoch"] = self.best_states["loss"][0]
                if self.best_states.get(select, (None,))[0] == epoch + 1:
                    since_best = 0
                else:
                    since_best += 1
                    if self.patience is not None and since_best >= self.patience:
                        what = "validation loss" if select == "loss" else f"validation {select}"
                        history["stop_reason"] = f"early stopping: no better {what} for {self.patience} epochs"
                        break
        finally:
            bar.close()
        best_epochs = {name: kept[0] for name, kept in self.best_states.items()}
        epochs = len(history["val_loss"])
        if self.patience is not None or self.keep != "final":  # the best epoch's weights by the criterion
            epoch, value, best_state = self.best_states.get(select, (None, None, best_state))
            network.load_state_dict(best_state)
            history.update(_kept("best", epoch, select, epochs, best_epochs))
        else:
            history.update(_kept("final", epochs, None, epochs, best_epochs))
        # the validation loss of the weights the network holds now (what a user should be shown)
        kept_epoch = history["kept_epoch"]
        history["kept_val_loss"] = history["val_loss"][kept_epoch - 1] if kept_epoch else None
        network.eval()
        history["best_val_loss"] = self.best_states["loss"][1]
        history["best_epochs"] = best_epochs
        return history

    def evaluate(self, network: nn.Module, loss: LossFn, batches: Iterable) -> float:
        """The mean loss over `batches`, weighted by their rows, with the network in eval mode and not
        updated (gradients in θ stay available); the network is back in train mode afterwards."""
        network.eval()
        total, count = 0.0, 0
        for batch in batches:
            n = _rows_in(batch)
            total += loss(network, batch).item() * n
            count += n
        network.train()
        return total / max(count, 1)


def _kept(weights: str, epoch: int | None, criterion: str | None, epochs: int, best_epochs: dict) -> dict:
    """The history's record of the weights kept: `kept` ("final" or "best"), `kept_epoch`, `kept_by` (the
    criterion of a best epoch: "loss" or a monitor's name; None for the final weights) and `kept_why`."""
    if weights == "final":
        others = ", ".join(f"{'validation loss' if k == 'loss' else k} at epoch {e}" for k, e in best_epochs.items())
        why = (f"the final weights of the cosine schedule (epoch {epoch} of {epochs}), keep='final', the default: "
               "against exact likelihoods they erred less than the weights of the best validation epoch, whose "
               "choice follows the noise of the validation rows (benchmarks/README.md, 'Model selection')"
               + (f"; best epochs, not kept: {others}" if others else ""))
    else:
        what = "validation loss" if criterion == "loss" else f"validation {criterion}"
        why = f"the weights of epoch {epoch} of {epochs}, the lowest {what}"
    return {"kept": weights, "kept_epoch": epoch, "kept_by": criterion, "kept_why": why}


def to_device(batch, device: torch.device):
    """A batch (a dict of tensors, a tuple or list of them, or a tensor) with its tensors on `device`."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _rows_in(batch) -> int:
    """The rows of a batch: the leading dimension of its (first) tensor."""
    if isinstance(batch, dict):
        return len(next(iter(batch.values())))
    return len(batch[0] if isinstance(batch, (tuple, list)) else batch)


def _name(data) -> str:
    return str(data.path) if hasattr(data, "path") else str(data)


def _check_finite(train: _Rows, val: _Rows, where: str, desc: str) -> None:
    """Raises a TrainingError naming how many rows hold NaN or ±inf, and in which fields."""
    bad = train.non_finite + val.non_finite
    if not bad:
        return
    fields = {k: train.bad_fields.get(k, 0) + val.bad_fields.get(k, 0) for k in (*train.bad_fields, *val.bad_fields)}
    detail = ", ".join(f"{k} in {c:,} rows" for k, c in fields.items())
    raise TrainingError(
        f"{bad:,} of {train.count + val.count:,} rows that {desc} trains on hold NaN or infinite values ({detail}) in "
        f"{where}: a network trained on them would output NaN, so training did not start and nothing was kept. Fix "
        f"the simulator where it returns non-finite values and simulate again, or train a method that does not read "
        f"{', '.join(fields)}.", rows=bad)


#: the numbers a data set may hold in memory for training (2²⁸ float32, 1 GiB): a data set of larger rows (images)
#: is streamed from its file every epoch even below `in_memory_rows`
IN_MEMORY_VALUES = 2**28


class _Rows:
    """The rows of a row source that one loss reads: in memory unless a large streaming source.

    Counts the rows, and those holding NaN or ±inf in a field of `finite` (`non_finite`, and per
    field `bad_fields`), in one pass.
    """

    def __init__(self, data: RowSource, fields: tuple[str, ...], label: int | None, in_memory_rows: int,
                 finite: tuple[str, ...]):
        self.data, self.fields, self.label = data, fields, label
        per_row = getattr(data, "values_per_row", None)  # large rows (images) stream above IN_MEMORY_VALUES
        big = callable(per_row) and len(data) * per_row(fields) > IN_MEMORY_VALUES
        stream = isinstance(data, StreamingRowSource) and (len(data) > in_memory_rows or big)
        self.cached = None if stream else data.tensors(fields, label=label)
        parts = [self.cached] if self.cached is not None else data.batches(
            SCAN_ROWS, finite or fields[:1], label=label, shuffle=False)
        self.count, self.non_finite, self.bad_fields = 0, 0, {}
        for part in parts:
            self.count += len(next(iter(part.values())))
            bad_rows = None
            for key in finite:
                if not part[key].is_floating_point():
                    continue
                bad = ~torch.isfinite(part[key].reshape(len(part[key]), -1)).all(1)
                if bad.any():
                    self.bad_fields[key] = self.bad_fields.get(key, 0) + int(bad.sum())
                    bad_rows = bad if bad_rows is None else bad_rows | bad
            self.non_finite += 0 if bad_rows is None else int(bad_rows.sum())

    def batches(self, batch_size: int, seed: int | None):
        if self.cached is None:
            yield from self.data.batches(batch_size, self.fields, label=self.label, shuffle=seed is not None,
                                         seed=seed or 0)
            return
        order = (torch.randperm(self.count, generator=torch.Generator().manual_seed(seed))
                 if seed is not None else torch.arange(self.count))
        for lo in range(0, self.count, batch_size):
            idx = order[lo : lo + batch_size]
            yield {k: v[idx] for k, v in self.cached.items()}
