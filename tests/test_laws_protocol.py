"""``fit --protocol bartoldson2024`` against an independent re-implementation of the notebook.

The reference is bbartoldson/Adversarial-Robustness-Limits (``Scaling_law_fitting_and_plots.ipynb``
with ``scaling_law_utils.py``). The functions prefixed ``nb_`` below re-implement its procedure
from a reading of it, on rows in its data layout (the columns of ``AT_scaling_law_data.csv``:
``config``, ``params`` and ``data`` in millions, ``data_precise`` in millions, ``train_fraction``,
``flops``, ``FID``, ``data_source``, ``CW_test_loss``, ``CW_test_acc``), independently of advscale:

* every fit keeps checkpoints with ``train_fraction >= 0.5``, drops runs with ``params < 100e6
  and data > 10e6 and FID < 10`` (``data``: the nominal size) and takes each configuration's
  lowest-loss checkpoint among the rest, with D = ``data_precise · train_fraction``;
* Approach 2 fits A, B, E, α, β on DG (mean Huber of log residuals, the code's starting grid),
  then ε, ζ on EDM-7/10/20 with B, E anchored at DG's FID, and rescales B, E to FID 0;
* Approach 1 keeps checkpoints past half of training above the FLOPs floor and draws the
  envelope as ``Analysis`` does (linear interpolation in FLOPs, finished runs compete);
* the loss→accuracy line is regressed on DG's runs' minimum-loss checkpoints.

The optimiser here is SciPy's L-BFGS-B from the best starts of the code's grid, with tight
tolerances; advscale's is its own, so parameters are compared to optimiser tolerance.
"""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import huber

from advscale.errors import AdvscaleError
from advscale.laws.fit import fit_law
from advscale.laws.presets import PRESETS
from advscale.laws.protocol import PROTOCOLS, resolve_protocol
from advscale.records.tables import import_table

TRUTH = PRESETS["bartoldson2024-approach2"]["params"]
SOURCES = {"dg20": 1.65, "vanilla7": 6.79, "vanilla10": 3.3, "vanilla20": 2.2, "pfgmpp18": 1.76}
MODELS_M = (5.0, 11.0, 27.0, 66.0, 130.0, 270.0)
DATA_M = (5, 10, 20, 50, 100)
FRACTIONS = tuple(k / 10 for k in range(1, 11))
K = 7822
DELTA = 1e-3


# -- the notebook's data layout, simulated from a known law ----------------------------------
def _loss(n: float, d: float, fid: float) -> float:
    p = TRUTH
    return (p["A"] / n ** p["alpha"] + p["B"] * (1 + fid) ** p["zeta"] / d ** p["beta"]
            + p["E"] * (1 + fid) ** p["epsilon"])


def notebook_rows(seed: int = 0) -> list[dict]:
    """Rows like AT_scaling_law_data.csv: one per checkpoint of every configuration.

    Each run's full schedule is 1.024 × its nominal size (batches round up); small models on
    large data overfit late in training (the exclusion rule's motivation); log-normal noise
    makes a run's lowest-loss checkpoint past half of training often not its last.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for src, fid in SOURCES.items():
        for n_m, d_m in itertools.product(MODELS_M, DATA_M):
            precise = d_m * 1.024
            overfit = 0.08 if (n_m < 100 and d_m > 10) else 0.0
            for tf in FRACTIONS:
                d = precise * 1e6 * tf
                loss = _loss(n_m * 1e6, d, fid) * (1 + overfit * max(0.0, tf - 0.7))
                loss *= math.exp(rng.normal(0, 0.004))
                rows.append({"config": f"{src}-n{n_m:g}-d{d_m}", "model": f"wrn-n{n_m:g}-swish",
                             "params": n_m, "data": d_m,
                             "data_precise": precise, "train_fraction": tf,
                             "flops": K * n_m * 1e6 * d, "FID": fid, "data_source": src,
                             "CW_test_loss": loss,
                             "CW_test_acc": 1.2575 - 0.7496 * loss + rng.normal(0, 0.002),
                             "auto_attack": None})
    return rows


def write_table(path, rows: list[dict]):
    """The rows as AT_scaling_law_data.csv (an empty cell for a missing auto_attack)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                     for k, v in r.items()} for r in rows)
    return path


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return notebook_rows()


@pytest.fixture(scope="module")
def records(rows, tmp_path_factory) -> list[dict]:
    """The rows imported through the built-in ``bartoldson2024`` map, as a user would."""
    path = write_table(tmp_path_factory.mktemp("nb") / "AT_scaling_law_data.csv", rows)
    return import_table(path, "bartoldson2024")


# -- the notebook's procedure, re-implemented -----------------------------------------------
def nb_huber(r: np.ndarray) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= DELTA, 0.5 * r * r, DELTA * (a - 0.5 * DELTA))


def nb_optimum_rows(rows: list[dict], sources, drop_small_models=True, floor=0.5) -> dict:
    """``get_data_of_source_and_train_frac`` + the exclusion query + ``get_LNDFlopsFID_at_
    optimum``: L, N, D, F, FID of each configuration's lowest-loss checkpoint."""
    keep = [r for r in rows if r["train_fraction"] >= floor and r["data_source"] in sources]
    if drop_small_models:
        keep = [r for r in keep if not (r["params"] * 1e6 < 100e6 and r["data"] * 1e6 > 10e6
                                        and r["FID"] < 10)]
    best: dict[str, dict] = {}
    for r in keep:  # idxmin: the first of equal minima
        if r["config"] not in best or r["CW_test_loss"] < best[r["config"]]["CW_test_loss"]:
            best[r["config"]] = r
    sel = list(best.values())
    return {"L": np.array([r["CW_test_loss"] for r in sel]),
            "N": np.array([r["params"] * 1e6 for r in sel]),
            "D": np.array([r["data_precise"] * 1e6 * r["train_fraction"] for r in sel]),
            "FID": np.array([r["FID"] for r in sel])}


def nb_lbfgs(loss, grad, starts, keep: int = 12) -> np.ndarray:
    """L-BFGS-B (tight) from the ``keep`` best starts of a grid; the lowest objective wins."""
    starts = np.asarray(starts, dtype=float)
    order = np.argsort([loss(s) for s in starts])[:keep]
    best = None
    for s in starts[order]:
        r = minimize(lambda x: (loss(x), grad(x)), s, jac=True, method="L-BFGS-B",
                     options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000, "maxfun": 10000})
        if best is None or r.fun < best.fun:
            best = r
    return best.x


def nb_scipy_defaults(loss, grad, starts, every: int = 1) -> np.ndarray:
    """The notebook's optimiser: L-BFGS-B with SciPy's defaults (finite differences, default
    tolerances, no bounds) from *every* start in order; the first strictly lowest wins. With
    ``every`` > 1 only every ``every``-th start (the test's coarse grid; ``--coarse-grid``)."""
    best, best_x = 1e10, None
    for s in starts[::every]:
        r = minimize(loss, np.asarray(s, dtype=float), method="L-BFGS-B")
        if r.fun < best:
            best, best_x = r.fun, r.x
    return best_x


def nb_stage1(obs: dict, search=nb_lbfgs) -> np.ndarray:
    """``approach_3`` on the base dataset: a, b, e, α, β of lse(a−α ln N, b−β ln D, e)."""
    ln_n, ln_d, ln_l = np.log(obs["N"]), np.log(obs["D"]), np.log(obs["L"])

    def parts(x):
        t = np.stack([x[0] - x[3] * ln_n, x[1] - x[4] * ln_d, np.full_like(ln_n, x[2])])
        m = t.max(axis=0)
        w = np.exp(t - m)
        return np.log(w.sum(axis=0)) + m - ln_l, w / w.sum(axis=0)

    def loss(x):
        return float(np.mean(nb_huber(parts(x)[0])))

    def grad(x):
        r, s = parts(x)
        psi = np.clip(r, -DELTA, DELTA) / r.size
        return np.array([psi @ s[0], psi @ s[1], psi @ s[2], -psi @ (s[0] * ln_n),
                         -psi @ (s[1] * ln_d)])

    grid = itertools.product([0, 1, 2, 5, 10], [0, 1, 2, 5, 10], [-1, -0.5, 0, 0.5, 1],
                             [0, 0.1, 0.25, 0.5, 1], [0, 0.1, 0.25, 0.5, 1])
    return search(loss, grad, list(grid))


def nb_stage2(obs: dict, base: np.ndarray, base_fid: float, search=nb_lbfgs) -> np.ndarray:
    """``chinchilla_approach_3_FID_with_base``: ε, ζ with b, e shifted by
    (ln(1+FID) − ln(1+FID_base))·ζ and ·ε."""
    a, b, e, al, be = base
    ln_n, ln_d, ln_l = np.log(obs["N"]), np.log(obs["D"]), np.log(obs["L"])
    u, u0 = np.log(1 + obs["FID"]), np.log(1 + base_fid)
    du = u - u0

    def parts(x):
        ep, ze = x  # FID_with_base_modifier: param + ln(1+FID)·p − ln(1+FID_base)·p
        t = np.stack([a - al * ln_n, (b + (u * ze - u0 * ze)) - be * ln_d,
                      e + (u * ep - u0 * ep)])
        m = t.max(axis=0)
        w = np.exp(t - m)
        return np.log(w.sum(axis=0)) + m - ln_l, w / w.sum(axis=0)

    def loss(x):
        return float(np.mean(nb_huber(parts(x)[0])))

    def grad(x):
        r, s = parts(x)
        psi = np.clip(r, -DELTA, DELTA) / r.size
        return np.array([psi @ (s[2] * du), psi @ (s[1] * du)])

    grid = itertools.product([0.01, 0.1, 0.2], [-0.3, -0.15, 0.15, 0.3])
    return search(loss, grad, list(grid))


def nb_approach2(rows: list[dict], search=nb_lbfgs, search2=None) -> dict[str, float]:
    base_fid = SOURCES["dg20"]
    a, b, e, al, be = nb_stage1(nb_optimum_rows(rows, ["dg20"]), search)
    ep, ze = nb_stage2(nb_optimum_rows(rows, ["vanilla7", "vanilla10", "vanilla20"]),
                       np.array([a, b, e, al, be]), base_fid, search2 or search)
    u0 = math.log1p(base_fid)  # FID_with_base_modifier(…, FID=0, log_first=True)
    return {"A": math.exp(a), "B": math.exp(b - ze * u0), "E": math.exp(e - ep * u0),
            "alpha": al, "beta": be, "epsilon": ep, "zeta": ze,
            "B_base": math.exp(b), "E_base": math.exp(e)}


def nb_approach3(rows: list[dict]) -> dict[str, float]:
    """``Equation_1_5_That_Is_Chinchilla_At_FID0(FID_modifies_E=True)`` on every data source:
    raw A, B, E, Q, α, β, κ, ε from the code's 648-point grid, SciPy's default L-BFGS-B."""
    obs = nb_optimum_rows(rows, list(SOURCES))
    n, d, fid, ln_l = obs["N"], obs["D"], obs["FID"], np.log(obs["L"])

    def loss(x):
        big_a, big_b, big_e, q, al, be, ka, e_fid = x
        with np.errstate(all="ignore"):
            t = np.stack([be * np.log(big_b / d + (q * fid) ** (ka / be)),
                          np.log(big_e + np.log(1 + fid) * e_fid),
                          np.log(big_a) - al * np.log(n)])
            m = t.max(axis=0)
            lp = np.log(np.exp(t - m).sum(axis=0)) + m
            return float(np.mean(huber(DELTA, lp - ln_l)))

    grid = itertools.product([5, 6, 7], [6500, 7000, 7500], [0.6, 0.5], [0.01, 0.5],
                             [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.8, 0.6], [0.01])
    x = nb_scipy_defaults(loss, None, list(grid), every=8)
    return dict(zip(("A", "B", "E", "Q", "alpha", "beta", "kappa", "epsilon"), map(float, x),
                    strict=True))


def nb_accuracy_map(rows: list[dict]) -> tuple[float, float]:
    """Cell 13's ``acc_reg``: DG's configurations' minimum-loss checkpoints (all of them)."""
    best: dict[str, dict] = {}
    for r in rows:
        if r["data_source"] == "dg20" and (r["config"] not in best or r["CW_test_loss"]
                                           < best[r["config"]]["CW_test_loss"]):
            best[r["config"]] = r
    x = np.array([r["CW_test_loss"] for r in best.values()])
    y = np.array([r["CW_test_acc"] for r in best.values()])
    slope, icpt = np.polyfit(x, y, 1)
    return float(slope), float(icpt)


def nb_approach1(rows: list[dict], source: str, flop_floor: float = 1.9e17) -> dict:
    """``approach_1`` + ``get_param_data_scaling_coeffs_from_slopes`` + ``Analysis``."""
    data = [r for r in rows if r["train_fraction"] >= 0.5 and r["data_source"] == source]
    lo = min(r["flops"] for r in data if r["train_fraction"] > 0.5)
    hi = max(r["flops"] for r in data)
    data = [r for r in data if r["flops"] > flop_floor]
    lines: dict[str, list[dict]] = {}
    for r in data:
        lines.setdefault(r["config"], []).append(r)
    bests, fl, ns, ds = [], [], [], []
    for f in np.logspace(np.log10(lo) - 0.001, np.log10(hi) + 0.001, 1000):
        best_metric, best_line = 1e9, None
        for line in lines.values():
            xs = [r["flops"] for r in line]
            ys = [r["CW_test_loss"] for r in line]
            if f < min(xs):
                continue
            i = int(np.searchsorted(xs, f, "left"))
            if i == 0:
                val = ys[0]
            elif i >= len(xs):
                val = min(ys)
            else:
                w = (f - xs[i - 1]) / (xs[i] - xs[i - 1])
                val = w * ys[i] + (1 - w) * ys[i - 1]
            if val < best_metric:
                best_metric, best_line = val, line
        if best_line is None or f > max(r["flops"] for r in best_line):
            continue
        if best_metric > min(bests + [best_metric]):
            continue
        f_max = max(r["flops"] for r in best_line)
        bests.append(best_metric)
        fl.append(f)
        ns.append(best_line[0]["params"] * 1e6)
        ds.append(min(1, f / f_max) * max(r["data_precise"] for r in best_line) * 1e6)
    lf = np.log10(fl)
    return {"a": float(np.polyfit(lf, np.log10(ns), 1)[0]),
            "b": float(np.polyfit(lf, np.log10(ds), 1)[0]),
            "s": float(np.polyfit(np.log(fl), np.log(bests), 1)[0]), "points": len(fl)}


# -- the tests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb2(rows) -> dict[str, float]:
    return nb_approach2(rows)


@pytest.fixture(scope="module")
def fit2(records) -> dict:
    return fit_law(records=records, approach="2", protocol="bartoldson2024", n_boot=0)


def test_protocol_approach2_matches_the_notebook_procedure(nb2, fit2):
    got = fit2["params"]
    for k in ("A", "B", "E", "alpha", "beta", "epsilon", "zeta"):
        assert got[k] == pytest.approx(nb2[k], rel=1e-5, abs=1e-7), k
    anchoring = fit2["anchoring"]
    assert anchoring["base_dataset"] == "dg20" and anchoring["base_fid"] == 1.65
    assert anchoring["params_at_base_fid"]["B"] == pytest.approx(nb2["B_base"], rel=2e-4)
    assert anchoring["params_at_base_fid"]["E"] == pytest.approx(nb2["E_base"], rel=2e-4)
    # Eq. 4's exponents as the notebook prints them: a = β/(α+β)
    assert fit2["derived"]["a"] == pytest.approx(nb2["beta"] / (nb2["alpha"] + nb2["beta"]),
                                                 rel=2e-4)


def test_protocol_is_logged_in_the_fit_record(fit2):
    proto = fit2["protocol"]
    assert proto == PROTOCOLS["bartoldson2024"].record()
    assert proto["points"] == "best" and proto["min_train_fraction"] == 0.5
    assert proto["anchor"] == "base" and proto["joint_polish"] is False
    assert proto["grids"] == "code" and proto["exclusion_size"] == "nominal"
    assert fit2["points"] == "best" and fit2["exclusion"]["size"] == "nominal"
    # only DG and the three stage-2 datasets are fitted (PFGM++ is held out)
    assert fit2["data"]["fids"] == [1.65, 2.2, 3.3, 6.79]
    # the nominal-size rule keeps the 10M runs that saw 10.24M samples
    assert not any("-d10" in r and r.endswith("-d10") for r in fit2["exclusion"]["dropped_runs"])


def test_protocol_accuracy_map_is_regressed_on_the_base_dataset(rows, fit2):
    slope, icpt = nb_accuracy_map(rows)
    m = fit2["loss_to_accuracy"]
    assert m["slope"] == pytest.approx(slope, rel=1e-9)
    assert m["intercept"] == pytest.approx(icpt, rel=1e-9)
    assert m["n"] == len(MODELS_M) * len(DATA_M)  # every DG run, the excluded ones too


def test_protocol_choices_change_the_fit_and_each_is_its_own_option(records, fit2):
    default = fit_law(records=records, approach="2", n_boot=0, full_grid=False)
    assert default["protocol"]["name"] == "advscale" and "anchoring" not in default
    assert default["params"]["alpha"] != pytest.approx(fit2["params"]["alpha"], rel=1e-3)
    # the 10M runs (10.24M samples seen) fall to the exclusion rule on samples seen
    assert any(r.endswith("-d10") for r in default["exclusion"]["dropped_runs"])
    one = fit_law(records=records, approach="2", n_boot=0, protocol="bartoldson2024",
                  protocol_options={"joint_polish": True})
    assert one["protocol"]["joint_polish"] is True and one["protocol"]["anchor"] == "base"
    assert one["objective"] <= fit2["objective"] + 1e-12


def test_protocol_names_are_checked(records):
    with pytest.raises(AdvscaleError, match="protocol 'chinchilla': choose from"):
        resolve_protocol("chinchilla")
    with pytest.raises(AdvscaleError, match="anchor 'middle': choose from fid0, base"):
        resolve_protocol("advscale", {"anchor": "middle"})
    with pytest.raises(AdvscaleError, match="optimizer 'bfgs': choose from advscale, notebook"):
        resolve_protocol("bartoldson2024", {"optimizer": "bfgs"})
    with pytest.raises(AdvscaleError, match=r"dataset\(s\) 'edm5' not in the records"):
        fit_law(records=records, approach="2", n_boot=0, protocol="bartoldson2024",
                protocol_options={"stage2_datasets": ["edm5"]})


def test_protocol_approach1_matches_the_notebook_envelope(rows, records):
    want = nb_approach1(rows, "pfgmpp18")
    got = fit_law(records=records, approach="1", n_boot=0, protocol="bartoldson2024",
                  filters=["dataset == 'pfgmpp18'"])
    assert got["stats"]["envelope_points"] == want["points"]
    for k in ("a", "b", "s"):
        assert got["params"][k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
    # advscale's own envelope on the same data differs (all checkpoints, no FLOPs floor)
    mine = fit_law(records=records, approach="1", n_boot=0, filters=["dataset == 'pfgmpp18'"])
    assert mine["params"]["a"] != pytest.approx(want["a"], rel=1e-3)


# -- the notebook's optimiser (fit --optimizer notebook) -------------------------------------
NB_OPT = {"optimizer": "notebook"}


def test_map_gives_the_exclusion_rule_the_nominal_size(rows, records):
    """Through the built-in map: samples_target is the nominal ``data`` column, so the rule
    drops exactly the notebook's runs (``params<100e6 & data>10e6 & FID<10``)."""
    by_run = {r["run_id"]: r for r in records if r["kind"] == "train.eval"}
    assert by_run["dg20-n27-d10"]["samples_target"] == 10_000_000
    assert by_run["dg20-n27-d10"]["samples_seen"] == 10_240_000
    want = {r["config"] for r in rows if r["params"] * 1e6 < 100e6 and r["data"] * 1e6 > 10e6
            and r["FID"] < 10}
    got = fit_law(records=records, approach="1", n_boot=0, protocol="bartoldson2024",
                  exclusion=True, filters=["dataset == 'pfgmpp18'"])
    pf = {c for c in want if c.startswith("pfgmpp18")}
    assert set(got["exclusion"]["dropped_runs"]) == pf and len(pf) == 12


@pytest.fixture(scope="module")
def nb2_default_optimizer(rows) -> dict[str, float]:
    # the test's size: every 12th start of stage 1's 3,125 (advscale's --coarse-grid)
    return nb_approach2(rows, lambda f, g, s: nb_scipy_defaults(f, g, s, every=12),
                        nb_scipy_defaults)


def test_notebook_optimizer_approach2_equals_the_notebook(records, rows, nb2_default_optimizer,
                                                          fit2):
    want = nb2_default_optimizer
    got = fit_law(records=records, approach="2", protocol="bartoldson2024", n_boot=0,
                  protocol_options=NB_OPT, full_grid=False)
    assert got["protocol"]["optimizer"] == "notebook"
    assert set(got["exclusion"]["dropped_runs"]) == {
        r["config"] for r in rows if r["params"] < 100 and r["data"] > 10 and r["FID"] < 10}
    for k in ("A", "B", "E", "alpha", "beta", "epsilon", "zeta"):
        assert got["params"][k] == pytest.approx(want[k], rel=1e-3), k
    # the default (tight) optimiser reaches a lower summed Huber objective on the same data
    assert fit2["objective"] <= got["objective"]


def test_notebook_optimizer_approach3_equals_the_notebook(records, rows):
    want = nb_approach3(rows)
    got = fit_law(records=records, approach="3", protocol="bartoldson2024", n_boot=0,
                  protocol_options=NB_OPT, full_grid=False)
    assert len(got["exclusion"]["dropped_runs"]) == 60
    for k in want:
        assert got["params"][k] == pytest.approx(want[k], rel=1e-3), k
    tight = fit_law(records=records, approach="3", protocol="bartoldson2024", n_boot=0)
    assert tight["objective"] <= got["objective"]


def test_notebook_optimizer_approach1_equals_the_notebook(rows, records):
    want = nb_approach1(rows, "dg20")
    got = fit_law(records=records, approach="1", n_boot=0, protocol="bartoldson2024",
                  protocol_options=NB_OPT, filters=["dataset == 'dg20'"])
    for k in ("a", "b", "s"):
        assert got["params"][k] == pytest.approx(want[k], rel=1e-3), k
