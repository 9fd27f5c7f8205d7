"""One record of a simulator (data headers, trained_on.json, ALFI machines) and its rebuild, which imports
no module the caller did not name."""

import json
import sys

import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine.estimators.alfi import ALFI
from goldmine.simulators.describe import describe, rebuild

USER_MODULE = """\
import torch
from goldmine.simulators import Simulator, box_prior
from goldmine.simulators.base import Draws

IMPORTED = []
IMPORTED.append(1)


class Shifted(Simulator):
    name = "shifted"
    theta_dim = x_dim = 1
    has_gold = False

    def __init__(self, shift=0.0):
        self.shift = shift
        self.prior = box_prior([-1.0], [1.0])
        self.reference = torch.zeros(1, dtype=torch.float64)

    def config(self):
        return {"shift": self.shift}

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        return Draws(theta + self.shift + torch.randn(theta.shape, generator=generator, dtype=theta.dtype))
"""


@pytest.mark.parametrize("sim", [gm.simulators.GaltonBoard(), gm.simulators.Weinberg(sigma=0.2),
                                 gm.simulators.Poisson(), gm.simulators.GaussianMixture(3),
                                 gm.simulators.LotkaVolterra(max_events=1000)], ids=lambda s: s.name)
def test_builtin_simulators_round_trip(sim):
    record = json.loads(json.dumps(describe(sim)))  # as written to and read from a file
    assert record["simulator"] == sim.name and record["simulator_class"].startswith("goldmine.simulators.")
    again = rebuild(record)
    assert type(again) is type(sim) and again.config() == sim.config()


def test_a_data_set_header_is_a_record(tmp_path):
    data = gm.simulate(gm.simulators.Weinberg(sigma=0.2), 200, tmp_path / "w.h5", progress=False)
    record = describe(gm.simulators.Weinberg(sigma=0.2))
    assert {k: data.meta[k] for k in record} == record
    assert rebuild(data.meta).config() == {"sigma": 0.2}


@pytest.fixture
def user_simulator(tmp_path, monkeypatch):
    """A simulator class of the user's in its own module, and a data set simulated from it."""
    (tmp_path / "shifted_sims.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import shifted_sims

    data = gm.simulate(shifted_sims.Shifted(shift=0.5), 100, tmp_path / "s.h5", progress=False)
    monkeypatch.delitem(sys.modules, "shifted_sims")
    return shifted_sims, data


def test_a_users_simulator_is_not_imported_from_a_record(user_simulator):
    module, data = user_simulator
    path = list(sys.path)
    with pytest.raises(ValueError, match=r"s\.h5 records the simulator 'shifted' of class shifted_sims\.Shifted.*"
                                         r"--simulator shifted_sims:Shifted.*simulator=Shifted"):
        rebuild(data.meta, where=str(data.path))
    assert "shifted_sims" not in sys.modules and sys.path == path  # nothing imported, the path untouched
    # the class the caller passes is built with the recorded options; an instance is taken as it is
    sim = rebuild(data.meta, simulator=module.Shifted)
    assert isinstance(sim, module.Shifted) and sim.shift == 0.5
    given = module.Shifted(shift=2.0)
    assert rebuild(data.meta, simulator=given) is given


def test_records_that_name_other_modules_import_nothing():
    for qualified in ("os.system", "goldmine.simulators.nowhere.Thing", "goldmine.simulators.base.Simulator"):
        before = set(sys.modules)
        with pytest.raises(ValueError, match="not built into goldmine"):
            rebuild({"simulator": "x", "simulator_class": qualified, "simulator_config": {}})
        assert set(sys.modules) == before
    with pytest.raises(ValueError, match="does not record the class"):
        rebuild({"simulator": "x"})
    with pytest.raises(ValueError, match="does not take its recorded options"):
        rebuild({**describe(gm.simulators.Weinberg()), "simulator_config": {"no_such_option": 1}})
    with pytest.raises(TypeError, match="simulator must be"):
        rebuild(describe(gm.simulators.Weinberg()), simulator=3)


def test_adapters_ask_for_the_simulator_itself():
    sim = gm.simulators.BlackBoxSimulator(lambda t: t + np.random.normal(size=t.shape),
                                          gm.simulators.box_prior([-1.0], [1.0]))
    with pytest.raises(ValueError, match="BlackBoxSimulator wrapping .*<lambda>.*simulator=sim"):
        rebuild(describe(sim))
    assert rebuild(describe(sim), simulator=sim) is sim


def test_alfi_machines_saved_with_the_former_record_still_rebuild_their_simulator(tmp_path):
    tiny = {"steps": 2, "thetas": 2, "runs": 3, "n_obs": 5, "problems": 8, "hidden": 8, "features": 8, "state": 8,
            "epochs": 1, "progress": False}
    alfi = ALFI(**tiny).fit(gm.simulators.Poisson())
    alfi.save(tmp_path / "alfi")
    config_path = tmp_path / "alfi" / "config.json"
    config = json.loads(config_path.read_text())
    record = config["fitted"]["simulator"]
    config["fitted"]["simulator"] = {"name": record["simulator"], "class": record["simulator_class"],
                                     "config": record["simulator_config"]}
    config_path.write_text(json.dumps(config))
    loaded = gm.load(tmp_path / "alfi")
    assert loaded.simulator_info_ == record
    x = torch.ones(5, 1)
    torch.testing.assert_close(loaded.infer(x, seed=1).mu, alfi.infer(x, seed=1).mu)
