"""The one table of goldmine's methods: each estimator family declares its methods here, once.

A `Method` says what a method is: its family and the estimator class that trains it, the data
fields and rows it reads, its loss (a named, documented function of `goldmine.losses`), its own
default options, a one-line description and its reference. Whether it needs gold follows from the
fields it reads. Everything else is generated from this table: `goldmine list`, the methods the
command line and study files accept and their options, the "works without gold" messages of
black-box simulators and data sets, the README's method table (`markdown_table()`;
tests/test_registry.py fails when the README and this table disagree, and prints the table to paste)
and docs/architecture.md's table of the rows and fields each method reads (`rows_table()`).

The family modules (ratio, score, likelihood, posterior, baselines, alfi) register their methods
when `goldmine.estimators` is imported. A method of your own registers the same way; a new ratio
loss, for example, is one function and one line:

    from goldmine.estimators.ratio import ratio_method
    register_method(ratio_method("brier", brier_loss, "squared error of ŝ", "Brier (1950)"))

and `with registered(ratio_method(...)):` registers it for one block only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

#: the data fields that only a simulator with gold (a joint likelihood) yields
GOLD_FIELDS = ("log_r", "score", "score_ref")
#: every field a method may read, in the order the methods list them
FIELDS = ("theta", "x", "label", "log_r", "score", "score_ref")
#: the order of the families in listings; families registered later follow in registration order
FAMILY_ORDER = ("ratio", "score", "likelihood", "posterior", "baseline", "alfi")
ROWS = {None: "", 0: " (rows at θ)", 1: " (rows at θ_ref)"}


@dataclass(frozen=True)
class Method:
    """One method of goldmine.

    Attributes:
        name: what the command line, study files and estimators call it.
        family: ratio, score, likelihood, posterior, baseline, alfi, or a family of your own.
        estimator: the class that trains it, constructed as `estimator(method=name, **options)` when its
            constructor takes `method`, else `estimator(**options)`; None when goldmine has no
            estimator for it (abc is a function of `goldmine.inference`).
        about: one line on what it learns.
        reference: where it comes from (authors, arXiv number).
        fields: the data fields it reads, a subset of `FIELDS`.
        label: the rows it trains on: None both, 0 the rows drawn at θ, 1 the rows drawn at θ_ref.
        loss: the loss per row, a function of `goldmine.losses` (None for the methods without one).
        defaults: its own defaults of options the estimator shares with other methods (rascal's α).
        theta_gradient: the loss reads the surrogate's gradient in θ (a double backward).
        repaired: the rows drawn at θ_ref are paired with fresh θ every epoch (carl, cascal).
        anchored: the surrogate is log r̂(x|θ) = g(x, θ) − g(x, θ_ref), exactly 0 at θ_ref (ratio family).
        from_data: trained on a data set, so the command line and studies can train it; False for the
            methods that learn from the simulator itself (alfi, abc).
        neural: trained by `goldmine.training.Trainer`, whose settings are then its options too.
    """

    name: str
    family: str
    estimator: type | None
    about: str
    reference: str
    fields: tuple[str, ...] = ()
    label: int | None = None
    loss: Callable | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    theta_gradient: bool = False
    repaired: bool = False
    anchored: bool = True
    from_data: bool = True
    neural: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"a method's name is a lower-case identifier such as 'alices'; got {self.name!r}.")
        if not isinstance(self.family, str) or not self.family.isidentifier():
            raise ValueError(f"{self.name}: family must be an identifier such as 'ratio'; got {self.family!r}.")
        for what in ("about", "reference"):
            text = getattr(self, what)
            if not isinstance(text, str) or not text.strip() or "\n" in text:
                raise ValueError(f"{self.name}: {what} must be one non-empty line; got {text!r}.")
        unknown = [f for f in self.fields if f not in FIELDS]
        if unknown:
            raise ValueError(f"{self.name}: unknown fields {unknown}; a method reads some of {', '.join(FIELDS)}.")
        if self.label not in ROWS:
            raise ValueError(f"{self.name}: label must be None (both), 0 (rows at θ) or 1 (rows at θ_ref); "
                             f"got {self.label!r}.")
        if self.loss is not None and not callable(self.loss):
            raise TypeError(f"{self.name}: loss must be a function; got {type(self.loss).__name__}.")
        object.__setattr__(self, "fields", tuple(f for f in FIELDS if f in self.fields))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def gold(self) -> tuple[str, ...]:
        """The gold fields it reads (log_r, score, score_ref)."""
        return tuple(f for f in self.fields if f in GOLD_FIELDS)

    @property
    def needs_gold(self) -> bool:
        """Whether it needs a simulator with gold."""
        return bool(self.gold)

    @property
    def needs_reference_runs(self) -> bool:
        """Whether it needs runs drawn at θ_ref, the second row of each pair (`goldmine.simulate`'s layout
        "pairs"): every method trained from data but those on rows at θ only (nre, nres, npe) and the flows
        (nle, scandal), which read a run at θ_ref as just another (θ, x) pair."""
        return self.from_data and self.label != 0 and self.family != "likelihood"

    @property
    def trainable(self) -> bool:
        """Whether the command line and studies can train it from a data set."""
        return self.from_data and self.estimator is not None

    @property
    def needs(self) -> str:
        """What it reads, as text: 'x, θ, log_r', 'x, score_ref (rows at θ_ref)', 'the simulator'."""
        order = ("x", "theta", "log_r", "score", "score_ref")
        shown = [{"theta": "θ"}.get(f, f) for f in order if f in self.fields]
        return ", ".join(shown) + ROWS[self.label] if shown else "the simulator"


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Adds a method to the table and returns it.

    Raises:
        ValueError: a method of that name is registered already (`unregister_method` it first).
    """
    if not isinstance(method, Method):
        raise TypeError(f"register a goldmine.estimators.registry.Method; got {type(method).__name__}.")
    if method.name in _METHODS:
        raise ValueError(f"a method named {method.name!r} is registered already ({_METHODS[method.name].family} "
                         "family): choose another name, or unregister_method it first.")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> Method:
    """Removes a method from the table and returns it."""
    get_method(name)
    return _METHODS.pop(name)


@contextlib.contextmanager
def registered(method: Method) -> Iterator[Method]:
    """Registers `method` for the `with` block only."""
    register_method(method)
    try:
        yield method
    finally:
        if _METHODS.get(method.name) is method:
            del _METHODS[method.name]


def methods(family: str | None = None) -> dict[str, Method]:
    """The registered methods by name (of one family, or all), the families in `FAMILY_ORDER`."""
    families = list(FAMILY_ORDER) + [m.family for m in _METHODS.values() if m.family not in FAMILY_ORDER]
    rank = {f: i for i, f in reversed(list(enumerate(families)))}
    ordered = sorted(_METHODS.values(), key=lambda m: rank[m.family])  # stable: registration order within
    return {m.name: m for m in ordered if family is None or m.family == family}


def get_method(name: str) -> Method:
    """The method called `name`.

    Raises:
        ValueError: no such method; the message lists the known ones.
    """
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; the methods are {', '.join(methods())} (goldmine list methods).")
    return _METHODS[name]


def family_method(family: str, name: str, owner: str) -> Method:
    """The method called `name` of `family`, for the estimator `owner` that trains that family.

    Raises:
        ValueError: no such method in the family; the message lists the family's methods.
    """
    method = _METHODS.get(name)
    if method is None or method.family != family:
        raise ValueError(f"unknown method {name!r} for {owner}; known: {', '.join(methods(family))}.")
    return method


def layout_for(names) -> str:
    """The data layout for `goldmine.simulate(..., layout=...)` that suits the methods `names`: "prior" (every
    run at θ ~ prior) when none of them needs runs at θ_ref, else "pairs".

    For example "prior" for ["npe", "nre"], and "pairs" for ["nle", "carl"] (carl needs runs at θ_ref).
    """
    return "pairs" if any(get_method(n).needs_reference_runs for n in names) else "prior"


#: the method an estimator of a family trains when it is built without one: (on data with gold, on data without,
#: on data of the layout "prior", None for the same as without that layout)
DEFAULT_METHODS = {"ratio": ("alice", "carl", "nre"), "likelihood": ("scandal", "nle", None)}


def default_method(family: str, gold: bool, layout: str = "pairs") -> str:
    """The method that `family`'s estimator, built without one (`RatioEstimator()`), trains on data with or without
    gold of `layout`; the command line suggests the same one after goldmine simulate.

    The ratio family trains alice on gold, not alices: the score term's weight that suits one simulator's joint
    scores does not suit another's (benchmarks/README.md, "Model selection and the default gold method"); carl
    without gold, and nre on data without runs at θ_ref (layout "prior"), which is all it needs.

    Example:
        >>> default_method("ratio", True), default_method("ratio", False), default_method("ratio", True, "prior")
        ('alice', 'carl', 'nre')

    Raises:
        ValueError: `family` has no default method (its estimators need a method named).
    """
    if family not in DEFAULT_METHODS:
        raise ValueError(f"the {family} family has no default method; name one of {', '.join(methods(family))}.")
    with_gold, without, prior = DEFAULT_METHODS[family]
    if layout == "prior" and prior is not None:
        return prior
    return with_gold if gold else without


def goldless(trainable: bool = False) -> list[str]:
    """The methods that need no gold (all of them, or those the command line and studies can train)."""
    return [name for name, m in methods().items() if not m.needs_gold and (m.trainable or not trainable)]


def goldless_text() -> str:
    """The methods that need no gold, for messages: 'carl, nre, nle, ...'."""
    return ", ".join(goldless())


def loss_name(method: Method) -> str:
    """The loss as `module.function` (e.g. losses.rascal), or — for the methods without one."""
    if method.loss is None:
        return "—"
    module = getattr(method.loss, "__module__", None) or ""
    return f"{module.rpartition('.')[2]}.{getattr(method.loss, '__qualname__', repr(method.loss))}".lstrip(".")


def markdown_table() -> str:
    """The README's method table: one row per method."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| method | family | needs | what it learns | loss | reference |", "|---|---|---|---|---|---|"]
    for name, m in methods().items():
        cells = (name, m.family, m.needs, m.about, f"`{loss_name(m)}`" if m.loss else "—", m.reference)
        rows.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(rows)


def rows_table() -> str:
    """docs/architecture.md's table of what each method reads from a data set: its rows, its fields
    (● read, · not), whether its loss differentiates the surrogate in θ and re-pairs the rows drawn at θ_ref."""
    rows_read = {None: "both", 0: "0 (at θ)", 1: "1 (at θ_ref)"}
    head = ["method", "family", "rows (label)", *FIELDS, "∇_θ in loss", "re-paired"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in methods().items():
        cells = [name, m.family, rows_read[m.label] if m.from_data else "— (the simulator)",
                 *("●" if f in m.fields else "·" for f in FIELDS),
                 "yes" if m.theta_gradient else "", "yes" if m.repaired else ""]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


__all__ = ["DEFAULT_METHODS", "FIELDS", "GOLD_FIELDS", "Method", "default_method", "family_method", "get_method", "goldless", "goldless_text",
           "loss_name", "markdown_table", "methods", "register_method", "registered", "rows_table",
           "unregister_method"]
