"""Simulators by name: a built-in name or an import path, with constructor options, and rebuilt from records."""

from __future__ import annotations

import importlib
import inspect
import os

from .. import simulators
from ..simulators.base import Simulator, box_bounds
from ..simulators.describe import rebuild


#: built-in simulators by their `name` (with - written as _), and the class in goldmine.simulators
BUILTIN_SIMULATORS = {"galton": "GaltonBoard", "weinberg": "Weinberg", "poisson": "Poisson",
                      "mixture": "GaussianMixture", "lotka_volterra": "LotkaVolterra",
                      "lensing": "StrongLensing", "slcp": "SLCP", "two_moons": "TwoMoons"}


def make_simulator(spec: str, options: dict | None = None) -> Simulator:
    """A simulator from a built-in name or an import path, with constructor options.

    Arguments:
        spec: a built-in name (a key of `BUILTIN_SIMULATORS` or its class name; case and - / _
            do not matter) or `package.module:Name`, where Name is a Simulator class, a function
            returning a Simulator, or a Simulator instance (see `simulator_target`).
        options: keyword arguments of the class or function.

    Example:
        >>> make_simulator("weinberg", {"sigma": 0.2})
        Weinberg(sigma=0.2)
    """
    options = dict(options or {})
    target = simulator_target(spec)
    if isinstance(target, Simulator):
        if options:
            raise ValueError(f"{spec} is a simulator instance, so it takes no options; got {sorted(options)}.")
        return target
    if not callable(target):
        raise TypeError(f"{spec} is a {type(target).__name__}: name a Simulator class, a function that returns a "
                        "Simulator, or a Simulator instance.")
    check_call(target, options, spec)
    sim = target(**options)
    if not isinstance(sim, Simulator):
        raise TypeError(f"{spec} returned a {type(sim).__name__}, not a goldmine Simulator: subclass "
                        "goldmine.simulators.Simulator, or wrap a function θ → x in BlackBoxSimulator(fn, prior).")
    return sim


def simulator_target(spec: str):
    """The class, function or instance that `spec` names: a built-in simulator class by its name, or the
    object of an import path `package.module:Name` (see `import_object`)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a simulator is a built-in name or an import path package.module:Name; got {spec!r}.")
    if ":" in spec:
        return import_object(spec)
    key = spec.strip().lower().replace("-", "_")
    by_class = {cls.lower(): cls for cls in BUILTIN_SIMULATORS.values()}
    name = BUILTIN_SIMULATORS.get(key) or by_class.get(key)
    if name is None:
        raise ValueError(f"unknown simulator {spec!r}: the built-ins are {', '.join(BUILTIN_SIMULATORS)}; a "
                         "simulator of your own is named by its import path, package.module:Class.")
    return getattr(simulators, name)


def import_object(path: str):
    """The object named by `package.module:Name` (Name may be dotted), imported as Python imports it.

    The module is looked up on Python's path (sys.path) unchanged: goldmine adds no folder to it. A
    module in the working folder is found with `PYTHONPATH=.`, or under `python -m goldmine`, which
    puts the working folder first on the path as `python -m` always does.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not an import path: write package.module:Name.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            top = module_name.partition(".")[0]
            if os.path.isfile(f"{top}.py") or os.path.isdir(top):
                raise ValueError(f"cannot import {module_name!r} (from {path!r}): the working folder holds {top}, "
                                 "but goldmine imports only from Python's path, as Python does: run `python -m "
                                 "goldmine ...` or set PYTHONPATH=. to import from the working folder.") from None
            raise ValueError(f"cannot import {module_name!r} (from {path!r}): no such module on Python's path. "
                             "Check the spelling, and add that folder to PYTHONPATH (or run `python -m goldmine "
                             "...` in the folder that holds it).") from None
        raise
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in vars(module) if not n.startswith("_")]
            raise ValueError(f"{module_name} has no {attr!r} (from {path!r}); it defines {', '.join(names[:30])}.")
        obj = getattr(obj, part)
    return obj


def check_call(fn, options: dict, what: str) -> None:
    """Raises a ValueError listing `fn`'s parameters when it cannot take the keyword arguments `options`."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: let the call itself complain
        return
    try:
        signature.bind(**options)
    except TypeError as err:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = [p for p in signature.parameters.values() if p.kind in kinds]
        accepted = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params)
        raise ValueError(f"{what} does not take the options {options} ({err}); it takes: {accepted or 'none'}.") from None


def simulator_from_data(meta: dict, where) -> Simulator:
    """Rebuilds the simulator recorded in a data set's header or a trained_on.json (built-ins only)."""
    return rebuild(meta, where=str(where))


def describe_prior(prior) -> str:
    """A short text for a prior: U(low, high) for a box."""
    low, high = box_bounds(prior)
    if low is None:
        return type(prior).__name__
    if len(low) == 1 or (bool((low == low[0]).all()) and bool((high == high[0]).all())):
        power = "" if len(low) == 1 else f"^{len(low)}"
        return f"U({float(low[0]):g}, {float(high[0]):g}){power}"
    return f"U([{', '.join(f'{float(t):g}' for t in low)}], [{', '.join(f'{float(t):g}' for t in high)}])"
