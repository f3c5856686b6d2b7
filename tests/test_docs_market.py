"""docs/market_model.md against the code: the worked example recomputed, the formulas checked."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from rlbridge import sample_data
from rlbridge.actions import SOFTMAX_SCALE, make_action_mapping
from rlbridge.env import BANKRUPT_REWARD, PortfolioEnv
from rlbridge.market import MIN_ORDER_VALUE, MarketSimulator
from rlbridge.plugins.costs.percent import PercentCost
from tests.test_docs_config import tables_in

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docs" / "market_model.md").read_text()
FLAT = " ".join(TEXT.split())  # the text with line breaks as spaces, for phrases
BARS = sample_data.load(["SPY"], adjust=False)
DECISION = BARS.index.get_loc("2019-01-03")
CASH = 100_000.0


def table(header):
    (found,) = [t for t in tables_in(TEXT) if t[0][0] == header]
    return found[2:]


def shown(cell):
    """A figure as the page writes it -> (number, decimals shown)."""
    text = cell.replace(",", "").replace("%", "").replace("\u2212", "-").strip()
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text), decimals


def matches(cell, value, scale=1.0):
    number, decimals = shown(cell)
    return f"{number:.{decimals}f}" == f"{value * scale:.{decimals}f}"


def percent():
    return PercentCost(PercentCost.Config(rate=0.001))


def simulate(fractional):
    """The example: weight 1 at the close of 2019-01-03 and again at the close of 2019-01-04."""
    sim = MarketSimulator(BARS, percent(), cash=CASH, fractional=fractional)
    sim.reset(DECISION)
    first = sim.order_target_weights(np.array([1.0]))[0]
    batch = sim.step()
    value = sim.value()
    weights = sim.weights()
    figures = [first, batch.traded_value, batch.commission[0], sim.portfolio.cash, value,
               weights[0], weights[1], math.log(value / CASH)]
    second = sim.order_target_weights(np.array([1.0]))[0]
    batch = sim.step()
    figures += [second, batch.commission[0], sim.portfolio.cash, sim.value()]
    return figures, batch


def test_the_bars_of_the_example_are_the_sample():
    rows = table("SPY, as traded")
    assert [row[0] for row in rows] == ["2019-01-03", "2019-01-04", "2019-01-07"]
    for i, (day, open_, close) in enumerate(rows):
        assert BARS.index[DECISION + i].strftime("%Y-%m-%d") == day
        assert f"{BARS.open[DECISION + i, 0]:.6f}" == open_
        assert f"{BARS.close[DECISION + i, 0]:.6f}" == close


LABELS = ["shares bought", "traded value", "commission,", "cash after the fill",
          "value at the close of 2019-01-04", "SPY weight", "cash weight", "reward of the step",
          "shares ordered", "commission on that sale", "cash after that fill",
          "value at the close of 2019-01-07"]


@pytest.mark.parametrize("column, fractional", [(1, False), (2, True)])
def test_the_worked_example_is_what_the_simulator_computes(column, fractional):
    rows = table("figure")
    assert len(rows) == len(LABELS)
    assert all(row[0].startswith(label) for row, label in zip(rows, LABELS, strict=True))
    figures, second = simulate(fractional)
    for row, value in zip(rows, figures, strict=True):
        scale = 100.0 if row[0].endswith("weight at that close") else 1.0
        assert matches(row[column], value, scale), (row[0], row[column], value)
    assert second.price[0] == BARS.open[DECISION + 2, 0]
    assert f"at {second.price[0]:.6f}" in rows[9][0]


def test_the_walk_through_figures():
    close, open_ = BARS.close[DECISION, 0], BARS.open[DECISION + 1, 0]
    assert f"100,000 × 1 / {close:.6f} = {CASH / close:.2f} shares" in FLAT
    gap = open_ / close - 1
    assert f"${open_:.6f}, {gap:.1%} above the close" in FLAT
    figures, _ = simulate(False)
    cash, value = figures[3], figures[4]
    assert f"ends at \u2212${-cash:,.2f} after a {gap:.1%} gap" in FLAT
    next_close = BARS.close[DECISION + 1, 0]
    assert (f"{value:,.2f} / {next_close:.6f} = {value / next_close:.2f} shares, "
            f"{math.trunc(value / next_close)} whole shares, so the 409 held are 6 too many"
            ) in FLAT
    assert figures[0] == 409 and figures[8] == -6


def test_the_python_example_runs_and_gives_the_figures():
    (code,) = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
    scope = {}
    exec(compile(code, "market_model.md", "exec"), scope)  # noqa: S102 - our own doc's code
    sim = scope["sim"]
    figures, _ = simulate(False)
    assert (sim.portfolio.cash, sim.value()) == (figures[3], figures[4])
    assert scope["fills"].quantity.tolist() == [409.0]
    assert f"# {np.array([figures[0]])!r}" in code  # array([409.])
    # the last comment shows the leading digits of cash and value
    cash, value = re.search(r"# \((\S+)\.\.\., (\S+)\.\.\.\)", code).groups()
    assert repr(figures[3]).startswith(cash) and repr(figures[4]).startswith(value)
    assert (len(cash), len(value)) == (8, 9)


# ---------------------------------------------------------------------- the environment
def spy_env(fractional, start=DECISION, **options):
    features = np.zeros((len(BARS), 1, 1), dtype=np.float32)
    return PortfolioEnv(BARS, features, percent(), window=1, start=start, cash=CASH,
                        actions="long_short", fractional=fractional, **options)


@pytest.mark.parametrize("fractional", [False, True])
def test_the_environment_gives_the_example_value_and_reward(fractional):
    figures, _ = simulate(fractional)
    env = spy_env(fractional)
    obs, info = env.reset()
    assert (info["t"], info["value"]) == (DECISION, CASH)
    obs, reward, terminated, truncated, info = env.step(np.array([1.0], dtype=np.float32))
    assert info["value"] == figures[4] and reward == figures[7]
    assert obs["weights"].tolist() == np.float32([figures[5], figures[6]]).tolist()
    obs, reward, *_, info = env.step(np.array([1.0], dtype=np.float32))
    assert info["value"] == figures[11]
    assert reward == math.log(figures[11] / figures[4])


def test_the_reward_formula_with_both_penalties():
    assert "− turnover_penalty × traded[t] / value[t]" in TEXT
    assert "− drawdown_penalty × (1 − value[t+1] / peak[t+1])" in TEXT
    start = BARS.index.get_loc("2019-01-02")  # SPY falls: a drawdown from the starting cash
    env = spy_env(False, start, turnover_penalty=0.01, drawdown_penalty=0.5)
    env.reset()
    _, reward, *_, info = env.step(np.array([1.0], dtype=np.float32))
    value, traded = info["value"], info["traded"]
    assert value < CASH
    expected = math.log(value / CASH) - 0.01 * traded / CASH - 0.5 * (1 - value / CASH)
    assert reward == pytest.approx(expected, rel=1e-12)
    assert traded == pytest.approx(399 * BARS.open[start + 1, 0], rel=1e-15)  # 100,000 / 250.18


def test_the_constants_the_page_states():
    assert MIN_ORDER_VALUE == 0.01 and "< $0.01" in TEXT
    assert SOFTMAX_SCALE == 5.0 and "w[i] = exp(5 × a[i]) / Σ_j exp(5 × a[j])" in TEXT
    assert BANKRUPT_REWARD == -10.0 and "the step's reward is −10" in FLAT


def test_the_action_mapping_formulas():
    # softmax: clipped scores times 5; one score at 1 and the others at -1
    n = 11
    scores = -np.ones(n + 1)
    scores[0] = 1.0
    weights = make_action_mapping("softmax", n)(scores, None)
    assert weights[0] == pytest.approx(math.exp(10) / (math.exp(10) + n), rel=1e-12)
    assert f"{weights[0]:.2%} with 11 ETFs" in FLAT
    equal = make_action_mapping("softmax", 3)(np.full(4, 0.3), None)
    np.testing.assert_allclose(equal, 0.25, rtol=1e-15)
    clipped = make_action_mapping("softmax", 1)(np.array([7.0, -3.0]), None)
    np.testing.assert_allclose(clipped, make_action_mapping("softmax", 1)(
        np.array([1.0, -1.0]), None), rtol=1e-15)
    # long_short: scaled down only above the gross cap; cash is what is left
    long_short = make_action_mapping("long_short", 2, gross_cap=1.0)
    np.testing.assert_allclose(long_short(np.array([0.8, -0.6]), None),
                               [0.8 / 1.4, -0.6 / 1.4, 1 - 0.2 / 1.4], rtol=1e-12)
    np.testing.assert_allclose(long_short(np.array([0.3, -0.5]), None), [0.3, -0.5, 1.2],
                               rtol=1e-12)
    # discrete: a step of trade_step from the current weights, floored at 0, fitted in 100%
    discrete = make_action_mapping("discrete", 3, trade_step=0.1)
    current = np.array([0.5, 0.45, 0.05, 0.0])
    raw = np.maximum(current[:3] + (np.array([2, 2, 0]) - 1) * 0.1, 0)  # 0.6, 0.55, 0
    np.testing.assert_allclose(discrete(np.array([2, 2, 0]), current),
                               [*(raw / raw.sum()), 0.0], rtol=1e-12, atol=1e-15)


def test_the_equality_test_the_page_cites_exists():
    text = (ROOT / "tests" / "test_train.py").read_text()
    assert "def test_native_backtest_of_the_policy_replays_the_environment(" in text
    assert "tests/test_train.py::test_native_backtest_of_the_policy_replays_the_environment" \
           in FLAT
    assert "== 441" in text and "441 equity values" in FLAT
    assert "atol=1e-14" in text and "within 1e-14" in FLAT
