"""The one Trainer that fits every estimator of goldmine.

An estimator hands the Trainer its network and a loss: a function of (network, batch) → a scalar,
where a batch is a dict of field → tensor read from a `goldmine.Dataset`. The Trainer owns the rest:
AdamW with a cosine learning-rate schedule, mini-batches (held in memory for small sets, streamed
from the HDF5 file otherwise), a validation split, early stopping that restores the best weights,
gradient clipping, a guard that stops on a non-finite loss and keeps the last good weights, a
progress bar, and a history of the losses. A fixed seed gives the same result.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import checks
from .data import Dataset

LossFn = Callable[[nn.Module, dict[str, Tensor]], Tensor]


@dataclass
class Trainer:
    """Training settings and the training loop.

    The weights kept are the final ones of the schedule, or with `patience` those of the epoch with
    the best validation loss; after a non-finite loss, always those of the best epoch so far.

    Arguments:
        epochs: the maximum number of passes over the training rows.
        batch_size: rows per optimisation step.
        lr: the initial learning rate of AdamW; it decays on a cosine to lr·lr_final.
        lr_final: the final learning rate as a fraction of lr.
        weight_decay: AdamW's decoupled weight decay.
        validation: the fraction of rows held out for validation (and early stopping).
        patience: early stopping: stop after this many epochs without a better validation loss and
            restore the weights of the best epoch. None (the default) runs the whole cosine schedule
            and keeps its final, annealed weights: with noisy labels (joint ratios and scores) the
            validation loss is dominated by label noise and its minimum often falls on an early epoch
            of a still-improving network (on 3000 Galton runs the best-epoch weights had 1.3–6× the
            error of the final ones, for carl, alices and rascal alike).
        clip_grad: the maximal gradient norm per step.
        seed: seeds the initialisation (when the estimator builds its network) and the shuffling.
        in_memory_rows: data sets up to this many rows are read once into memory; larger ones are
            streamed from the file in chunks every epoch.
        progress: show a progress bar.
    """

    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    lr_final: float = 0.01
    weight_decay: float = 1e-4
    validation: float = 0.1
    patience: int | None = None
    clip_grad: float = 5.0
    seed: int = 0
    in_memory_rows: int = 2_000_000
    progress: bool = True
    history: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if name == "patience" and value is None:
                continue
            checks.positive_int(value, name)
        for name in ("lr", "clip_grad"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}.")
        checks.fraction(self.validation, "validation")

    def settings(self) -> dict:
        """The settings as plain JSON values (for config.json)."""
        out = asdict(self)
        out.pop("history")
        return out

    def fit(self, network: nn.Module, loss: LossFn, data: Dataset, fields: tuple[str, ...], label: int | None = None,
            desc: str = "train") -> dict:
        """Trains `network` in place on `data` and returns the history.

        Arguments:
            network: the module to train (its best weights are loaded at the end).
            loss: (network, batch) → scalar loss, batch a dict with `fields`.
            data: the data set; the last `validation` fraction of its rows validates. Anything with the
                same row interface trains too, held in memory: `split(fraction)` → (train, validation),
                `len()`, `tensors(fields, label=...)` → {field: tensor} and `path` (named in messages);
                ALFI's meta-training problems are such a table.
            fields: the fields the loss reads.
            label: train only on the rows of this label (0: drawn at θ, 1: drawn at θ_ref).
        """
        train, val = data.split(self.validation)
        train_rows = _Rows(train, fields, label, self.in_memory_rows)
        val_rows = _Rows(val, fields, label, self.in_memory_rows)
        if train_rows.count == 0 or val_rows.count == 0:
            raise ValueError(f"{data.path} has no rows{'' if label is None else f' of label {label}'} to train on.")
        steps = self.epochs * max(1, math.ceil(train_rows.count / self.batch_size))
        optimizer = torch.optim.AdamW(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=self.lr * self.lr_final)

        history = {"train_loss": [], "val_loss": [], "lr": [], "seconds": [], "best_epoch": None, "stop_reason": "epochs"}
        best, best_state, since_best = math.inf, copy.deepcopy(network.state_dict()), 0
        bar = tqdm(range(self.epochs), desc=desc, disable=not self.progress, dynamic_ncols=True)
        start = time.perf_counter()
        for epoch in bar:
            network.train()
            total, count = 0.0, 0
            for step, batch in enumerate(train_rows.batches(self.batch_size, seed=self.seed * 100_003 + epoch)):
                value = loss(network, batch)
                if not torch.isfinite(value):
                    history["stop_reason"] = (
                        f"non-finite loss ({value.item()}) at epoch {epoch + 1}, step {step + 1}"
                    )
                    warnings.warn(
                        f"training stopped: the loss became {value.item()} at epoch {epoch + 1}, step {step + 1}. "
                        f"The weights of epoch {history['best_epoch']} (the best so far) were kept. Lower the "
                        f"learning rate (lr={self.lr}) or check the data for extreme values.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    break
                optimizer.zero_grad()
                value.backward()
                nn.utils.clip_grad_norm_(network.parameters(), self.clip_grad)
                optimizer.step()
                schedule.step()
                n = len(next(iter(batch.values())))
                total += value.item() * n
                count += n
            if history["stop_reason"] != "epochs":
                break
            val_loss = self.evaluate(network, loss, val_rows)
            history["train_loss"].append(total / max(count, 1))
            history["val_loss"].append(val_loss)
            history["lr"].append(schedule.get_last_lr()[0])
            history["seconds"].append(time.perf_counter() - start)
            bar.set_postfix(loss=f"{total / max(count, 1):.4g}", val=f"{val_loss:.4g}")
            if val_loss < best:
                best, best_state, since_best = val_loss, copy.deepcopy(network.state_dict()), 0
                history["best_epoch"] = epoch + 1
            else:
                since_best += 1
                if self.patience is not None and since_best >= self.patience:
                    history["stop_reason"] = f"early stopping: no better validation loss for {self.patience} epochs"
                    break
            if not math.isfinite(val_loss):
                history["stop_reason"] = "non-finite validation loss"
                warnings.warn("training stopped: the validation loss is not finite; the best weights were kept.",
                              RuntimeWarning, stacklevel=3)
                break
        bar.close()
        if self.patience is not None or history["stop_reason"] != "epochs":
            network.load_state_dict(best_state)  # early stopping, or a guard that stopped training
        network.eval()
        history["best_val_loss"] = best
        self.history = history
        return history

    def evaluate(self, network: nn.Module, loss: LossFn, rows: "_Rows") -> float:
        """The mean loss over `rows` without updating the network (gradients in θ stay available)."""
        network.eval()
        total, count = 0.0, 0
        for batch in rows.batches(4096, seed=None):
            n = len(next(iter(batch.values())))
            total += loss(network, batch).item() * n
            count += n
        network.train()
        return total / max(count, 1)


class _Rows:
    """The rows of a data set that one loss reads: in memory when small (or not a Dataset), streamed when large."""

    def __init__(self, data: Dataset, fields, label, in_memory_rows: int):
        self.data, self.fields, self.label = data, tuple(fields), label
        in_memory = len(data) <= in_memory_rows or not isinstance(data, Dataset)  # a row table streams from no file
        self.cached = data.tensors(self.fields, label=label) if in_memory else None
        if self.cached is not None:
            self.count = len(self.cached[self.fields[0]])
        else:
            self.count = sum(len(b["label"]) for b in data.batches(65536, ["label"], label=label, shuffle=False))

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
