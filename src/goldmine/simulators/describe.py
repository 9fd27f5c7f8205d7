"""The record of a simulator in a file, and the simulator rebuilt from it.

A data set's header, a model's trained_on.json and a saved ALFI machine record the simulator
behind them the same way, `describe(sim)`:

    simulator          its name (Simulator.name)
    simulator_class    its class, module.QualifiedName
    simulator_config   its constructor's arguments as plain JSON values (Simulator.config())

`rebuild(record)` turns such a record back into a simulator without importing anything the caller
did not name in that call: a built-in simulator is rebuilt by its class name from
`goldmine.simulators`; any other (a simulator class of yours, a black box, a Pyro model) only from
what the caller passes as `simulator`. A file names a module, and importing it would run its code;
a record read from disk must not decide which code runs.
"""

from __future__ import annotations

import inspect

from .base import Simulator

#: goldmine's adapters: the record names a function or model of the user's, which is not rebuilt
ADAPTERS = ("BlackBoxSimulator", "PyroSimulator")
__all__ = ["describe", "rebuild"]


def describe(sim: Simulator) -> dict:
    """The record of `sim`: {"simulator": name, "simulator_class": module.Class, "simulator_config": config}.

    Example:
        >>> from goldmine.simulators import Weinberg
        >>> describe(Weinberg(sigma=0.2))["simulator_class"]
        'goldmine.simulators.weinberg.Weinberg'
    """
    return {
        "simulator": sim.name,
        "simulator_class": f"{type(sim).__module__}.{type(sim).__qualname__}",
        "simulator_config": sim.config(),
    }


def rebuild(record: dict, simulator=None, where: str = "this file") -> Simulator:
    """The simulator of a record made by `describe`.

    Arguments:
        record: a dict with simulator, simulator_class and simulator_config (extra keys are ignored,
            so a data set's whole header will do).
        simulator: None for a built-in simulator; otherwise a Simulator (returned as it is), or a
            Simulator class or a function returning one, called with the recorded config.
        where: what holds the record (a file or folder), named in messages.

    Raises:
        ValueError: the record names a simulator that is not built in and none was passed (the
            message names its class and how to pass it), or the recorded config does not fit.
        TypeError: `simulator` is not a Simulator, a class or a function.

    Example:
        >>> from goldmine.simulators import Weinberg
        >>> rebuild(describe(Weinberg(sigma=0.2)))
        Weinberg(sigma=0.2)
    """
    from .. import simulators  # the package, whose built-ins are already imported

    qualified = record.get("simulator_class") or ""
    config = record.get("simulator_config") or {}
    module, _, name = qualified.rpartition(".")
    if simulator is None:
        builtin = getattr(simulators, name, None) if module.startswith("goldmine.simulators.") else None
        if (isinstance(builtin, type) and issubclass(builtin, Simulator) and builtin is not Simulator
                and name not in ADAPTERS and f"{builtin.__module__}.{builtin.__qualname__}" == qualified):
            return _construct(builtin, config, qualified, where)
        raise ValueError(_not_rebuilt(record, qualified, where))
    if isinstance(simulator, Simulator):
        return simulator
    if not callable(simulator):
        raise TypeError(f"simulator must be a goldmine Simulator, a Simulator class or a function returning one; got "
                        f"{type(simulator).__name__}.")
    sim = _construct(simulator, config, getattr(simulator, "__qualname__", repr(simulator)), where)
    if not isinstance(sim, Simulator):
        raise TypeError(f"simulator returned a {type(sim).__name__}, not a goldmine Simulator.")
    return sim


def _not_rebuilt(record: dict, qualified: str, where: str) -> str:
    name = record.get("simulator", "?")
    if not qualified:
        return (f"{where} does not record the class of its simulator {name!r}: pass the simulator, with "
                "--simulator (a built-in name or package.module:Class) on the command line or simulator= in Python.")
    module, _, cls = qualified.rpartition(".")
    if cls in ADAPTERS:
        config = record.get("simulator_config") or {}
        inner = config.get("fn") or config.get("model") or "a function of yours"
        return (f"{where} records the simulator {name!r}, a {cls} wrapping {inner}, which goldmine cannot rebuild "
                "from a file: pass the simulator itself, with --simulator package.module:name (a function returning "
                "it, or the instance) on the command line or simulator=sim in Python.")
    return (f"{where} records the simulator {name!r} of class {qualified}, which is not built into goldmine; "
            f"goldmine imports no module you did not name: pass it, with --simulator {module}:{cls} on the command "
            f"line or simulator={cls} (the class, or the simulator itself) in Python.")


def _construct(factory, config: dict, what: str, where: str) -> Simulator:
    """factory(**config), or a ValueError naming the parameters when the recorded config does not fit."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call itself complain
        signature = None
    if signature is not None:
        try:
            signature.bind(**config)
        except TypeError as err:
            raise ValueError(f"the simulator {what} recorded in {where} does not take its recorded options {config} "
                             f"({err}): pass a simulator that does, or the simulator itself.") from None
    return factory(**config)

