"""Embedding networks: a learned summary s = e(x) of an x of any shape, trained jointly with an estimator.

An estimator given `embedding=` feeds its network e(x̃) instead of x, where x̃ is x standardised with
statistics learned from the training data (per element, or shared along the axes a built-in names, e.g.
one mean and std per channel of an image), and trains e together with the rest of its network on the
same loss. A ratio network then reads g(e(x̃), θ); a score network t̂(e(x̃)); a posterior flow q(θ|e(x̃));
ALFI's encoder φ(e(x̃)). The likelihood flows (nle, scandal) take none: x is their variable, not an input, and
a summary trained to raise its own density log p̂(e(x)|θ) does so by collapsing rather than by keeping what x
says about θ.

`embedding=` takes one of

    a built-in by name          "cnn", or with its settings {"name": "cnn", "channels": [16, 32], "out": 32}
    a torch.nn.Module of yours  any module mapping x (n, *x_shape) to features (n, k)

The built-ins (the settings each takes, and their defaults, are in `BUILTINS`):

    mlp      any x, flattened: a fully connected network
    cnn      images (C, H, W) or (H, W): convolution stages of stride 2, each halving the image, then
             pooled to at most 4 × 4 and mapped to `out` features; with symmetric=True the features are
             averaged over the 8 symmetries of the square (4 flips of a non-square image), so the summary,
             and every network reading it, is exactly invariant under them (for images whose distribution
             is, e.g. `StrongLensing`'s)
    deepset  sets of k events (k, d) or (k,): φ per event, mean (or sum) over the set, then ρ; the
             summary does not change when the events are permuted (Zaheer et al., arXiv:1703.06114)
    cnn1d    series (C, T) or (T,): 1-D convolution stages as cnn
    gru      series (T, C) or (T,): a GRU over time, its last hidden state mapped to `out` features
             (Cho et al., arXiv:1406.1078)

Saving without pickle: a built-in is recorded in config.json by its name and settings and rebuilt from
them; a user's module is recorded only by its class name: `goldmine.load(path, embedding=module)` takes
the module again (built with the same settings), and the saved weights are loaded into a copy of it. A
saved model never imports code.

The networks see x only through e, and the score-based losses differentiate in θ only, so e may use any
activation; the built-ins use the estimator's smooth ones by default.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from . import checks
from .nn import ACTIVATIONS, Standardize, check_activation, mlp

#: the name under which config.json records an embedding network of the user's own
USER = "module"

#: every built-in: its settings with their defaults
BUILTINS: dict[str, dict] = {
    "mlp": {"hidden": [128, 128], "out": 32, "activation": "silu"},
    "cnn": {"channels": [16, 32], "kernel": 3, "out": 32, "activation": "silu", "symmetric": False},
    "deepset": {"hidden": [64, 64], "features": 32, "out": 32, "pool": "mean", "activation": "silu"},
    "cnn1d": {"channels": [16, 32], "kernel": 5, "out": 32, "activation": "silu"},
    "gru": {"hidden": 64, "layers": 1, "out": 32},
}

#: the shapes of one x each built-in reads, for messages
TAKES = {"mlp": "any x", "cnn": "images (C, H, W) or (H, W)", "deepset": "sets of events (k, d) or (k,)",
         "cnn1d": "series (C, T) or (T,)", "gru": "series (T, C) or (T,)"}

SUGGEST = ("'mlp' for any x, 'cnn' for images (C, H, W), 'deepset' for sets of events (k, d), 'cnn1d' or 'gru' "
           "for series")


def embedding_spec(value, what: str = "embedding"):
    """The estimator's `embedding=` argument, checked when the estimator is built.

    Returns:
        None; a built-in as its full settings {"name": ..., every setting}; a user's nn.Module as given; or
        the record of a user's module {"name": "module", "class": ...} (a saved model's, before `load`
        passes the module again).

    Raises:
        ValueError, TypeError: an unknown name or setting, or a setting of the wrong type, naming the fix.
    """
    if value is None or isinstance(value, nn.Module):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be the name of a built-in ({', '.join(BUILTINS)}), a dict of its name and "
                        f"settings such as {{'name': 'cnn', 'channels': [16, 32], 'out': 32}}, or a torch.nn.Module; "
                        f"got {type(value).__name__}.")
    name = value.get("name")
    if name == USER:
        if not isinstance(value.get("class"), str):
            raise ValueError(f"{what} {value!r} records a user's module without its class name.")
        return {"name": USER, "class": value["class"]}
    if name not in BUILTINS:
        raise ValueError(f"{what} names an unknown network {name!r}; the built-ins are {', '.join(BUILTINS)} "
                         f"({SUGGEST}), or pass a torch.nn.Module of your own.")
    settings = {k: v for k, v in value.items() if k != "name"}
    unknown = sorted(set(settings) - set(BUILTINS[name]))
    if unknown:
        raise ValueError(f"the {name} embedding has no setting {', '.join(map(repr, unknown))}; its settings are "
                         f"{', '.join(f'{k}={v!r}' for k, v in BUILTINS[name].items())}.")
    out = {"name": name, **BUILTINS[name], **settings}
    for key, v in out.items():
        label = f"{what} {name}: {key}"
        default = BUILTINS[name].get(key)
        if isinstance(default, list):
            out[key] = list(checks.widths(v, label))
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise ValueError(f"{label} must be True or False; got {v!r}.")
        elif isinstance(default, int):
            out[key] = checks.positive_int(v, label)
        elif key == "activation":
            check_activation(v)
        elif key == "pool" and v not in ("mean", "sum"):
            raise ValueError(f"{label} must be 'mean' or 'sum'; got {v!r}.")
    return out


def embedding_record(spec) -> dict | None:
    """What config.json stores of a checked `embedding_spec`: a built-in's name and settings, or for a user's
    module only {"name": "module", "class": its class} (its code is never saved)."""
    if isinstance(spec, nn.Module):
        return {"name": USER, "class": f"{type(spec).__module__}.{type(spec).__qualname__}"}
    return None if spec is None else dict(spec)


def missing_module_error(record: dict) -> ValueError:
    return ValueError(
        f"this model was trained with an embedding network of your own ({record.get('class')}), whose code a saved "
        "model does not hold: pass it again when loading, goldmine.load(path, embedding=YourModule(...)), built "
        "with the same settings as when it was trained."
    )


def build_embedding(spec, x_shape: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...], int]:
    """The embedding network for x of shape (n, *x_shape).

    Arguments:
        spec: a checked `embedding_spec` (not None).
        x_shape: the shape of one x.

    Returns:
        (network, shared, out): the network (a user's module is copied, so that the estimator trains its own
        copy), the axes of one x whose elements share one mean and std in the standardisation before it
        (see `goldmine.nn.Standardize`), and the number of features it returns.

    Raises:
        ValueError: the built-in does not take x of this shape, a user's module is missing (a saved model
            loaded without it), or the network fails on x or returns anything but (n, k) features.
    """
    x_shape = tuple(int(d) for d in x_shape)
    if isinstance(spec, nn.Module):
        net = copy.deepcopy(spec)
        # one mean and std per element for a vector x; one for all elements of an x with more axes (an image
        # keeps its structure), unless the module names its own `shared` axes
        shared = tuple(getattr(spec, "shared", () if len(x_shape) == 1 else range(len(x_shape))))
        what = f"your embedding network {type(spec).__name__}"
    elif spec.get("name") == USER:
        raise missing_module_error(spec)
    else:
        net, shared = _builtin(spec, x_shape)
        what = f"the {spec['name']} embedding"
    return net, shared, _probe(net, x_shape, what)


def x_input(spec, x_dim: int, x_shape: tuple[int, ...] | None) -> tuple[nn.Module, nn.Module | None, int]:
    """What a network reads x through: (x_norm, embedding, features).

    Without an embedding (spec None): a per-element standardisation of flat x, no embedding and x_dim
    features, as networks read x before embeddings existed (same weights, same names). With one: the
    standardisation the embedding asks for, the embedding network and its number of features. A network
    then reads s = x_norm(x) or s = embedding(x_norm(x)) (`features`).
    """
    if spec is None:
        return Standardize(x_dim), None, x_dim
    net, shared, out = build_embedding(spec, x_shape or (x_dim,))
    return Standardize(x_shape or (x_dim,), shared), net, out


def features(x_norm: nn.Module, embedding: nn.Module | None, x: Tensor) -> Tensor:
    """s = x_norm(x), or embedding(x_norm(x)): x (n, *x_shape) → (n, features)."""
    s = x_norm(x)
    return s if embedding is None else embedding(s)


def _probe(net: nn.Module, x_shape: tuple[int, ...], what: str) -> int:
    """The number of features `net` returns for x (n, *x_shape), checked on two rows of zeros."""
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, *x_shape))
    except Exception as err:  # any failure of foreign code on the data's shape: name the shape and the fix
        raise ValueError(f"{what} fails on x of shape (n, {', '.join(map(str, x_shape))}), the data's x ({err}): "
                         "give a network that takes x of this shape.") from None
    finally:
        net.train(was)
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 2 or out.shape[1] < 1:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"{what} maps x of shape (2, {', '.join(map(str, x_shape))}) to {got}; it must return "
                         "features (n, k), one flat row per x: end it with nn.Flatten() and an nn.Linear(..., k).")
    return int(out.shape[1])


def _builtin(spec: dict, x_shape: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
    name, s = spec["name"], spec
    ndim = len(x_shape)
    allowed = {"mlp": None, "cnn": (2, 3), "deepset": (1, 2), "cnn1d": (1, 2), "gru": (1, 2)}[name]
    if allowed is not None and ndim not in allowed:
        raise ValueError(f"the {name} embedding takes {TAKES[name]}, but the data's x has shape "
                         f"(n, {', '.join(map(str, x_shape))}): choose another embedding ({SUGGEST}).")
    if name == "mlp":
        return MLPEmbedding(x_shape, s["hidden"], s["out"], s["activation"]), ()
    if name == "cnn":
        return ConvEmbedding(x_shape if ndim == 3 else (1, *x_shape), s["channels"], s["kernel"], s["out"],
                             s["activation"], dims=2, symmetric=s["symmetric"]), (1, 2) if ndim == 3 else (0, 1)
    if name == "cnn1d":
        return ConvEmbedding(x_shape if ndim == 2 else (1, *x_shape), s["channels"], s["kernel"], s["out"],
                             s["activation"], dims=1), (1,) if ndim == 2 else (0,)
    if name == "deepset":
        return DeepSet(x_shape[1] if ndim == 2 else 1, s["hidden"], s["features"], s["out"], s["pool"],
                       s["activation"]), (0,)
    return GRUEmbedding(x_shape[1] if ndim == 2 else 1, s["hidden"], s["layers"], s["out"]), (0,)


class MLPEmbedding(nn.Module):
    """x (n, *x_shape), flattened → a fully connected network → (n, out)."""

    def __init__(self, x_shape, hidden, out: int, activation: str):
        super().__init__()
        self.net = mlp(math.prod(x_shape), out, hidden, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class ConvEmbedding(nn.Module):
    """Convolution stages over images (n, C, H, W) (dims=2) or series (n, C, T) (dims=1) → (n, out).

    Each stage is a convolution with `kernel` (padding kernel // 2) of stride 2 while every axis is still
    longer than 1, so that it halves the image, and the activation; the last map is average-pooled to at
    most 4 (2-D) or 8 (1-D) positions per axis, flattened and mapped linearly to `out` features. (A strided
    convolution costs a quarter of a full one followed by pooling, and with kernel ≥ 3 still reads every
    pixel.) An x without a channel axis ((H, W) or (T,)) is read as one channel.

    symmetric (images only): e(x) = (1/|G|) Σ_{g∈G} f(g·x) with f the network above and G the dihedral group
    of the square, the 4 rotations by 90° and their 4 mirror images (for H ≠ W the 4 flips of the two
    axes). Then e(g·x) = e(x) for every g ∈ G exactly: when p(x|θ) is invariant under G, so is log r(x|θ),
    and the network need not learn the symmetry from the data, which at small budgets it does not (it
    overfits orientations instead). Averaging f rather than its last map costs nothing more, since the last
    layer is linear. Costs |G| forward passes per x.
    """

    def __init__(self, shape, channels, kernel: int, out: int, activation: str, dims: int, symmetric: bool = False):
        super().__init__()
        if symmetric and dims != 2:
            raise ValueError("symmetric=True averages over the symmetries of a 2-D image; a series has none here.")
        self.dims, self.shape, self.symmetric = dims, tuple(shape), symmetric
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        layers, width, size = [], shape[0], list(shape[1:])
        for c in channels:
            stride = 2 if min(size) >= 2 else 1
            layers += [conv(width, c, kernel, stride=stride, padding=kernel // 2), ACTIVATIONS[activation]()]
            size = [(s + 2 * (kernel // 2) - kernel) // stride + 1 for s in size]
            width = c
        last = [min(s, 4 if dims == 2 else 8) for s in size]
        layers += [(nn.AdaptiveAvgPool2d if dims == 2 else nn.AdaptiveAvgPool1d)(tuple(last)), nn.Flatten(),
                   nn.Linear(width * math.prod(last), out)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(len(x), *self.shape)
        if not self.symmetric:
            return self.net(x)
        views = dihedral(x)
        f = self.net(torch.cat(views))
        return f.reshape(len(views), len(x), f.shape[-1]).mean(0)


def dihedral(x: Tensor) -> list[Tensor]:
    """The images x (n, C, H, W) under every symmetry of their rectangle: the 8 of the dihedral group of the
    square (rotations by 0, 90, 180, 270° and their transposes) for H = W, else the 4 flips of (H, W)."""
    if x.shape[-1] != x.shape[-2]:
        return [x, x.flip(-1), x.flip(-2), x.flip(-2, -1)]
    turns = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    return turns + [t.transpose(-2, -1) for t in turns]


class DeepSet(nn.Module):
    """A permutation-invariant summary of a set of k events (n, k, d) (or (n, k), one feature per event):
    ρ(pool_i φ(x_i)) with φ, ρ fully connected and pool the mean (or the sum) over the events."""

    def __init__(self, d: int, hidden, features: int, out: int, pool: str, activation: str):
        super().__init__()
        self.d, self.pool = d, pool
        self.phi = mlp(d, features, hidden, activation)
        self.rho = mlp(features, out, hidden, activation)

    def forward(self, x: Tensor) -> Tensor:
        codes = self.phi(x.reshape(len(x), -1, self.d))
        return self.rho(codes.mean(1) if self.pool == "mean" else codes.sum(1))


class GRUEmbedding(nn.Module):
    """A GRU over a series (n, T, C) (or (n, T), one channel); its last hidden state → linear → (n, out)."""

    def __init__(self, channels: int, hidden: int, layers: int, out: int):
        super().__init__()
        self.channels = channels
        self.gru = nn.GRU(channels, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, out)

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.gru(x.reshape(len(x), -1, self.channels))
        return self.head(h[-1])
