"""Cost models: hand-computed fills and commissions, causality, composition, config errors."""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rlbridge import Bars, ConfigError, PluginError, UnknownNameError, sample_data
from rlbridge.cli import build_cli
from rlbridge.config import CostsConfig, load_config
from rlbridge.costs import apply_slippage, create_cost_model, describe_costs
from rlbridge.interfaces import CostContext, CostModel
from rlbridge.manager import make_plugin_manager
from rlbridge.plugins.costs.zero import ZeroCost

NAMES = ["composite", "per_share", "percent", "spread", "volatility_slippage", "zero"]

#: one configuration of every model, the composite using all of them
EVERY_MODEL = [
    ("percent", {}),
    ("per_share", {}),
    ("spread", {}),
    ("volatility_slippage", {"minimum_bps": 1.5}),
    ("zero", {}),
    ("composite", {"parts": [{"model": "spread", "bps": 3},
                             {"model": "volatility_slippage", "coefficient": 0.5},
                             {"model": "percent", "rate": 0.0005},
                             {"model": "per_share"}]}),
]


@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager(entrypoints=False, warn=False)


@pytest.fixture(scope="module")
def etfs():
    return sample_data.load(["SPY", "AGG", "XLK"], start="2019-01-01", end="2020-12-31")


def make(pm, name, **options):
    return create_cost_model(CostsConfig(name, options), pm)


def arr(*values):
    return np.array(values, dtype=np.float64)


def panel(closes, volumes):
    """Bars with the given ``[T, N]`` closes (open = high = low = close) and volumes."""
    close = np.asarray(closes, dtype=float)
    values = np.stack([close, close, close, close, np.asarray(volumes, dtype=float)], axis=2)
    return Bars(pd.bdate_range("2021-01-04", periods=len(close)),
                tuple("ABCDEFGHIJ"[:close.shape[1]]), values)


@pytest.fixture(scope="module")
def flat():
    """A context on bars that no fixed-cost model reads."""
    return CostContext(panel(np.full((3, 6), 10.0), np.full((3, 6), 1e6)), 1)


# ---------------------------------------------------------------------- hand-computed numbers
def test_percent_charges_its_rate_of_the_traded_value(pm, flat):
    model = make(pm, "percent")  # rate 0.001 by default
    price, quantity = arr(50, 50, 50, 40.10), arr(100, -100, 0, 250)
    assert model.fill_price(price, quantity, flat) is price
    np.testing.assert_allclose(model.commission(price, quantity, flat),
                               [5.00, 5.00, 0.0, 10.025], rtol=1e-12)
    assert make(pm, "percent", rate=0.002).commission(arr(40.10), arr(-250), flat) \
        == pytest.approx(20.05, rel=1e-12)


def test_per_share_follows_the_fixed_pricing_rule(pm, flat):
    model = make(pm, "per_share")  # $0.005/share, $1 minimum, 1% of value maximum
    price = arr(50, 50, 20, 0.10, 5, 50)
    quantity = arr(100, 1_000, -300, 1_000_000, 1, 0)
    np.testing.assert_allclose(model.commission(price, quantity, flat), [
        1.00,      # max($0.50, $1) = $1
        5.00,      # $5 is above the minimum and below 1% of $50,000
        1.50,      # a sell pays the same way
        1_000.00,  # $5,000 per share, capped at 1% of $100,000
        0.05,      # the cap wins over the minimum: 1% of $5
        0.0,       # no order, no minimum
    ], rtol=1e-12)
    assert model.fill_price(price, quantity, flat) is price
    cheap = make(pm, "per_share", per_share=0.0035, minimum=0.35, maximum_percent=0.005)
    np.testing.assert_allclose(cheap.commission(arr(50, 50), arr(40, 200), flat), [0.35, 0.70])


def test_spread_pays_the_half_spread_in_the_price(pm, flat):
    model = make(pm, "spread")  # 5 bps half spread
    price, quantity = arr(100, 100, 100), arr(10, -10, 0)
    np.testing.assert_allclose(model.fill_price(price, quantity, flat), [100.05, 99.95, 100.0],
                               rtol=1e-14)
    assert model.fill_price(price, quantity, flat)[2] == 100.0
    assert np.array_equal(model.commission(price, quantity, flat), [0.0, 0.0, 0.0])
    assert make(pm, "spread", bps=10).fill_price(arr(250), arr(-1), flat)[0] \
        == pytest.approx(249.75, rel=1e-14)


def test_zero_costs_nothing(pm, flat):
    model = make(pm, "zero")
    price, quantity = arr(12.5, 80), arr(-3, 1e6)
    assert np.array_equal(model.fill_price(price, quantity, flat), price)
    assert np.array_equal(model.commission(price, quantity, flat), [0.0, 0.0])


def test_volatility_slippage_by_hand(pm):
    # A closes 100, 110, 100: log returns +ln 1.1 and -ln 1.1, whose sample std is
    # sqrt(2) ln 1.1 = 0.134789; B never moves; A trades no volume at bar 3
    bars = panel([[100, 50], [110, 50], [100, 50], [100, 50], [100, 50]],
                 [[10_000, 10_000], [10_000, 10_000], [10_000, 10_000], [0, 10_000],
                  [10_000, 10_000]])
    model = make(pm, "volatility_slippage", window=2)
    ctx = CostContext(bars, 2)
    assert ctx.volatility(2)[0] == pytest.approx(0.1347889489, rel=1e-9)
    # 2,500 shares of a 10,000-share bar: 0.1 x 0.134789 x sqrt(0.25) = 67.39 bps
    fill = model.fill_price(arr(100, 50), arr(2_500, 2_500), ctx)
    assert fill[0] == pytest.approx(100.6739447446, rel=1e-12)
    assert fill[1] == 50.0  # no volatility, no minimum: no slippage
    assert model.fill_price(arr(100, 50), arr(-2_500, 0), ctx)[0] \
        == pytest.approx(99.3260552554, rel=1e-12)
    with_floor = make(pm, "volatility_slippage", window=2, minimum_bps=2)
    assert with_floor.fill_price(arr(100, 50), arr(2_500, -2_500), ctx) \
        == pytest.approx([100.6939447446, 49.99], rel=1e-12)
    # a thin bar cannot produce an absurd price: the default cap is 500 bps
    assert model.fill_price(arr(100, 50), arr(1e9, 0), ctx)[0] == pytest.approx(105.0, rel=1e-14)
    assert make(pm, "volatility_slippage", window=2, max_bps=100).fill_price(
        arr(100, 50), arr(-1e9, 0), ctx)[0] == pytest.approx(99.0, rel=1e-14)
    # zero volume (bar 3), volatility unknown (bar 0) or from one return (bar 1): minimum only
    for t in (3, 0, 1):
        got = with_floor.fill_price(arr(100, 50), arr(2_500, 0), CostContext(bars, t))
        assert got[0] == pytest.approx(100.02, rel=1e-14), t
        assert got[1] == 50.0
    assert np.array_equal(model.commission(fill, arr(2_500, 2_500), ctx), [0.0, 0.0])


@pytest.mark.parametrize("t", [25, 300, 480])
def test_volatility_slippage_on_the_sample_etfs_matches_pandas(pm, etfs, t):
    close = pd.DataFrame(etfs.close, index=etfs.index, columns=list(etfs.symbols))
    volatility = np.log(close).diff().rolling(20).std().iloc[t].to_numpy()  # ddof=1
    ctx = CostContext(etfs, t)
    np.testing.assert_allclose(ctx.volatility(20), volatility, rtol=1e-9)
    model = make(pm, "volatility_slippage", coefficient=0.3, minimum_bps=1)
    price = etfs.open[t + 1]
    quantity = arr(250_000, -40_000, 0)
    fraction = 0.3 * volatility * np.sqrt(np.abs(quantity) / etfs.volume[t]) + 1e-4
    expected = price * (1 + np.sign(quantity) * np.minimum(fraction, 0.05))
    np.testing.assert_allclose(model.fill_price(price, quantity, ctx), expected, rtol=1e-12)
    assert model.fill_price(price, quantity, ctx)[2] == price[2]
    assert expected[0] > price[0] * 1.0001 and expected[1] < price[1] * 0.9999


def test_vectorised_results_equal_per_asset_results(pm, etfs):
    rng = np.random.default_rng(3)
    for name, options in EVERY_MODEL:
        model = make(pm, name, **options)
        for t in (5, 150, 400):
            price = etfs.open[t + 1] * rng.uniform(0.9, 1.1, 3)
            quantity = rng.integers(-300_000, 300_000, 3).astype(float)
            quantity[rng.integers(0, 3)] = 0.0
            ctx = CostContext(etfs, t)
            fill = model.fill_price(price, quantity, ctx)
            commission = model.commission(fill, quantity, ctx)
            for j, symbol in enumerate(etfs.symbols):
                one = CostContext(etfs.select([symbol]), t)
                f = model.fill_price(price[j:j + 1], quantity[j:j + 1], one)
                c = model.commission(f, quantity[j:j + 1], one)
                assert f.shape == c.shape == (1,)
                assert f[0] == fill[j] and c[0] == commission[j], (name, t, symbol)


def test_integer_share_quantities_price_like_floats(pm, etfs):
    ctx = CostContext(etfs, 200)
    price, quantity = etfs.open[201], np.array([120_000, -3, 0])
    for name, options in EVERY_MODEL:
        model = make(pm, name, **options)
        fill = model.fill_price(price, quantity, ctx)
        assert fill.dtype == np.float64
        assert np.array_equal(fill, model.fill_price(price, quantity.astype(float), ctx))
        assert np.array_equal(model.commission(fill, quantity, ctx),
                              model.commission(fill, quantity.astype(float), ctx)), name


def test_no_model_looks_past_the_decision_bar(pm, etfs):
    rng = np.random.default_rng(11)
    models = [make(pm, name, **options) for name, options in EVERY_MODEL]
    for t in (3, 30, 250):
        values = etfs.values.copy()
        values[t + 1:] *= rng.uniform(0.5, 2.0, values[t + 1:].shape)  # prices and volumes
        later = Bars(etfs.index, etfs.symbols, values)
        price = etfs.open[t + 1]
        quantity = arr(300_000, -80_000, 0)
        for model in models:
            a, b = CostContext(etfs, t), CostContext(later, t)
            fa, fb = model.fill_price(price, quantity, a), model.fill_price(price, quantity, b)
            assert np.array_equal(fa, fb), (model, t)
            assert np.array_equal(model.commission(fa, quantity, a),
                                  model.commission(fb, quantity, b)), (model, t)
    # and the decision bar itself does count: a bigger volume at t means less impact
    t = 250
    values = etfs.values.copy()
    values[t, :, 4] *= 4
    busier = Bars(etfs.index, etfs.symbols, values)
    model = make(pm, "volatility_slippage")
    price, quantity = etfs.open[t + 1], arr(300_000, -80_000, 0)
    base = model.fill_price(price, quantity, CostContext(etfs, t)) - price
    less = model.fill_price(price, quantity, CostContext(busier, t)) - price
    np.testing.assert_allclose(less[:2], base[:2] / 2, rtol=1e-9)  # sqrt(1/4)


# ---------------------------------------------------------------------- composition
class FlatFee:
    """A third-party cost model without a Config: a fee per order, from plain options."""

    def __init__(self, options):
        self.fee = float(options.get("fee", 2.0))

    def fill_price(self, price, quantity, context):
        return price

    def commission(self, price, quantity, context):
        return np.where(quantity != 0, self.fee, 0.0)


def test_composite_equals_the_parts_applied_by_hand(pm, etfs):
    ctx = CostContext(etfs, 120)
    price, quantity = etfs.open[121], arr(200_000, -50_000, 0)
    model = make(pm, "composite", parts=[
        {"model": "spread", "bps": 3},
        {"model": "volatility_slippage", "coefficient": 0.5, "minimum_bps": 1},
        {"model": "percent", "rate": 0.0005},
        {"model": "per_share"},
    ])
    spread, slip = make(pm, "spread", bps=3), make(pm, "volatility_slippage", coefficient=0.5,
                                                   minimum_bps=1)
    percent, per_share = make(pm, "percent", rate=0.0005), make(pm, "per_share")
    fill = slip.fill_price(spread.fill_price(price, quantity, ctx), quantity, ctx)
    commission = percent.commission(fill, quantity, ctx) + per_share.commission(fill, quantity, ctx)
    assert np.array_equal(model.fill_price(price, quantity, ctx), fill)
    assert np.array_equal(model.commission(fill, quantity, ctx), commission)
    assert fill[0] > price[0] * 1.0004 and fill[1] < price[1] * 0.9996 and fill[2] == price[2]
    assert commission[2] == 0.0 and commission[0] > 0.0005 * 200_000 * fill[0]

    nested = make(pm, "composite", parts=[
        {"model": "composite", "parts": [
            {"model": "spread", "bps": 3},
            {"model": "volatility_slippage", "coefficient": 0.5, "minimum_bps": 1}]},
        {"model": "composite", "parts": [{"model": "percent", "rate": 0.0005},
                                         {"model": "per_share"}]},
    ])
    assert np.array_equal(nested.fill_price(price, quantity, ctx), fill)
    assert np.array_equal(nested.commission(fill, quantity, ctx), commission)


def test_composite_parts_may_be_module_paths(pm, flat):
    model = make(pm, "composite", parts=[
        {"model": "rlbridge.plugins.costs.spread:SpreadCost", "bps": 20},
        {"model": f"{__name__}:FlatFee", "fee": 1.25},
        {"model": "percent"},
    ])
    price, quantity = arr(100, 100), arr(10, 0)
    fill = model.fill_price(price, quantity, flat)
    assert fill == pytest.approx([100.2, 100.0], rel=1e-14)
    assert model.commission(fill, quantity, flat) == pytest.approx([1.25 + 1.002, 0.0], rel=1e-12)
    assert "FlatFee" in describe_costs(model)


def test_composite_of_commission_only_or_impact_only_parts(pm, flat):
    price, quantity = arr(40, 40), arr(-100, 0)
    fees = make(pm, "composite", parts=[{"model": "percent"}, {"model": "zero"}])
    assert fees.fill_price(price, quantity, flat) is price
    assert fees.commission(price, quantity, flat) == pytest.approx([4.0, 0.0])
    impact = make(pm, "composite", parts=[{"model": "spread"}, {"model": "spread"}])
    assert impact.fill_price(price, quantity, flat) == pytest.approx([40 * 0.9995 ** 2, 40.0])
    assert np.array_equal(impact.commission(price, quantity, flat), [0.0, 0.0])


# ---------------------------------------------------------------------- host helpers
def test_create_cost_model_builds_the_config_table_or_zero(pm, tmp_path, flat):
    assert isinstance(create_cost_model(None, pm), ZeroCost)
    path = tmp_path / "agent.toml"
    path.write_text('[costs]\nmodel = "per_share"\nminimum = 0.35\n')
    config = load_config(path, pm)
    model = create_cost_model(config.costs, pm, path=config.path)
    assert isinstance(model, CostModel)
    assert model.commission(arr(50, 50), arr(40, -400), flat) == pytest.approx([0.35, 2.0])
    assert isinstance(create_cost_model(CostsConfig("percent")), CostModel)  # its own manager


def test_describe_costs(pm):
    assert [describe_costs(make(pm, name, **options)) for name, options in EVERY_MODEL] == [
        "percent: 0.1% of traded value",
        "per_share: $0.005 per share, at least $1 and at most 1% of value per order",
        "spread: 5 bps half spread",
        "volatility_slippage: 0.1 x 20-bar volatility x sqrt(order / volume), 1.5-500 bps",
        "zero: no costs",
        "spread: 3 bps half spread + volatility_slippage: 0.5 x 20-bar volatility x "
        "sqrt(order / volume), 0-500 bps + percent: 0.05% of traded value + per_share: "
        "$0.005 per share, at least $1 and at most 1% of value per order",
    ]
    assert describe_costs(FlatFee({})) == "FlatFee"


def test_apply_slippage():
    got = apply_slippage(arr(10, 10, 10), arr(1, -1, 0), arr(0.01, 0.02, 0.5))
    assert got == pytest.approx([10.1, 9.8, 10.0], rel=1e-14)


# ---------------------------------------------------------------------- bad options
@pytest.mark.parametrize("name, options, message", [
    ("percent", {"rate": -0.1},
     "[costs.rate]: must be in [0, 1) (a fraction of traded value: 0.001 is 0.1%), got -0.1"),
    ("percent", {"rat": 0.1},
     "[costs.rat]: unknown key 'rat' (did you mean 'rate'?); valid keys: rate"),
    ("percent", {"rate": "0.1%"}, "[costs.rate]: expected a number, got '0.1%'"),
    ("per_share", {"minimum": -1},
     "[costs.minimum]: must be >= 0 (the least commission of an order, in cash), got -1.0"),
    ("per_share", {"maximum_percent": 0},
     "[costs.maximum_percent]: must be in (0, 1] (a fraction of the order's value: 0.01 is "
     "1%), got 0.0"),
    ("spread", {"bps": math.nan},
     "[costs.bps]: must be in [0, 10000) (the half spread in basis points: 5 is 0.05%), got nan"),
    ("volatility_slippage", {"window": 1},
     "[costs.window]: must be at least 2 (returns in the volatility), got 1"),
    ("volatility_slippage", {"minimum_bps": 50, "max_bps": 20},
     "[costs.minimum_bps]: must be in [0, 20] (basis points, at most max_bps), got 50.0"),
    ("volatility_slippage", {"coefficient": -0.1},
     "[costs.coefficient]: must be >= 0 (scales volatility x sqrt(order / volume)), got -0.1"),
    ("composite", {"parts": []},
     '[costs.parts]: needs at least one part, e.g. parts = [{ model = "spread" }]'),
    ("composite", {}, "[costs.parts]: missing required key 'parts'"),
    ("composite", {"parts": [{"model": "spread"}, {"model": "sprd"}]},
     "[costs.parts[1].model]: unknown cost model 'sprd' (did you mean 'spread'?); valid part "
     "names: composite, per_share, percent, spread, volatility_slippage, zero, or a "
     "'module:Class' path"),
    ("composite", {"parts": [{"bps": 5}]},
     "[costs.parts[0].model]: missing required key 'model' (the part's cost model)"),
    ("composite", {"parts": [{"model": "spread", "bsp": 5}]},
     "[costs.parts[0].bsp]: unknown key 'bsp' (did you mean 'bps'?); valid keys: bps"),
    ("composite", {"parts": [{"model": "composite", "parts": [{"model": "percent", "rate": 2}]}]},
     "[costs.parts[0].parts[0].rate]: must be in [0, 1) (a fraction of traded value: 0.001 is "
     "0.1%), got 2.0"),
    ("composite", {"parts": [{"model": ":Spread"}]},
     "[costs.parts[0].model]: expected 'module:Class', got ':Spread'"),
    ("composite", {"parts": "spread"},
     "[costs.parts]: expected a list of tables, got 'spread'"),
])
def test_bad_options_name_the_key(pm, name, options, message):
    with pytest.raises(ConfigError) as info:
        make(pm, name, **options)
    assert str(info.value) == message


def test_bad_costs_in_a_config_file_name_the_file_and_key(pm, tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[costs]\nmodel = "composite"\n\n[[costs.parts]]\nmodel = "spread"\n'
                    'bps = 2\n\n[[costs.parts]]\nmodel = "per_share"\nminimum = -0.35\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, pm)
    assert str(info.value) == (f"{path}: [costs.parts[1].minimum]: must be >= 0 (the least "
                               "commission of an order, in cash), got -0.35")


def test_unknown_models_and_unloadable_parts(pm):
    with pytest.raises(UnknownNameError) as info:
        make(pm, "percnt")
    assert str(info.value) == ("costs: unknown cost model 'percnt'; valid names: "
                               f"{', '.join(NAMES)} (did you mean 'percent'?)")
    with pytest.raises(PluginError) as info:
        make(pm, "composite", parts=[{"model": "spread"},
                                     {"model": "composite",
                                      "parts": [{"model": "no_such_module_xyz:Cost"}]}])
    assert str(info.value) == ("costs.parts[1].parts[0]: cannot load cost model "
                               "'no_such_module_xyz:Cost': ModuleNotFoundError: No module named "
                               "'no_such_module_xyz'")
    with pytest.raises(PluginError) as info:
        make(pm, "composite", parts=[{"model": "collections:OrderedDict"}])
    assert str(info.value) == ("costs.parts[0]: cost model 'collections:OrderedDict' built an "
                               "object of type OrderedDict, which has no fill_price and "
                               "commission methods")
    with pytest.raises(ConfigError) as info:
        make(pm, "composite", parts=[{"model": "rlbridge.plugins.costs.spread:SpreadCost",
                                      "bps": -1}])
    assert str(info.value) == ("[costs.parts[0].bps]: must be in [0, 10000) (the half spread "
                               "in basis points: 5 is 0.05%), got -1.0")


# ---------------------------------------------------------------------- registration
def test_rlbridge_list_costs_lists_every_model():
    cli = build_cli(make_plugin_manager(entrypoints=False, warn=False))
    result = CliRunner().invoke(cli, ["list", "costs"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == NAMES
    for name, line in zip(NAMES, lines, strict=True):
        assert line.endswith(f"[rlbridge.plugins.costs.{name}]")
    assert "half spread in basis points" in lines[3]
    result = CliRunner().invoke(cli, ["list", "costs", "--json"])
    assert [row["name"] for row in json.loads(result.output)] == NAMES


def test_cost_plugins_import_no_numpy():
    code = textwrap.dedent("""
        import sys
        from rlbridge.manager import make_plugin_manager
        pm = make_plugin_manager(entrypoints=False, warn=False)
        assert len(pm.registries["costs"]) == 6 and not pm.failures, pm.failures
        print(sorted(m for m in sys.modules if m.startswith("rlbridge.plugins.costs.")),
              "numpy" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(f"rlbridge.plugins.costs.{n}" for n in NAMES)) \
        + " False"


# ---------------------------------------------------------------------- properties
PROPERTY_BARS = panel(
    50 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.03, (40, 6)), axis=0)),
    np.where(np.random.default_rng(6).random((40, 6)) < 0.1, 0.0,
             np.random.default_rng(7).integers(100, 1_000_000, (40, 6))))

money = st.floats(0.01, 1e5)
shares = st.one_of(st.just(0.0), st.floats(-1e7, 1e7), st.integers(-10_000, 10_000).map(float))
models = st.one_of(
    st.builds(lambda r: ("percent", {"rate": r}), st.floats(0, 0.05)),
    st.builds(lambda p, m, x: ("per_share", {"per_share": p, "minimum": m, "maximum_percent": x}),
              st.floats(0, 0.05), st.floats(0, 10), st.floats(1e-4, 1)),
    st.builds(lambda b: ("spread", {"bps": b}), st.floats(0, 500)),
    st.builds(lambda c, w, lo, hi: ("volatility_slippage", {"coefficient": c, "window": w,
                                                            "minimum_bps": min(lo, hi),
                                                            "max_bps": hi}),
              st.floats(0, 5), st.integers(2, 30), st.floats(0, 100), st.floats(1, 2_000)),
    st.just(("zero", {})),
    st.just(EVERY_MODEL[-1]),
)


@settings(max_examples=300, deadline=None)
@given(spec=models, t=st.integers(0, 38),
       price=st.lists(money, min_size=6, max_size=6), quantity=st.lists(shares, min_size=6,
                                                                         max_size=6))
def test_buys_never_pay_less_sells_never_receive_more(pm, spec, t, price, quantity):
    model = make(pm, spec[0], **spec[1])
    price, quantity = np.array(price), np.array(quantity)
    ctx = CostContext(PROPERTY_BARS, t)
    fill = model.fill_price(price, quantity, ctx)
    commission = model.commission(fill, quantity, ctx)
    assert fill.shape == commission.shape == (6,)
    assert np.isfinite(fill).all() and (fill > 0).all()
    assert (fill[quantity > 0] >= price[quantity > 0]).all()
    assert (fill[quantity < 0] <= price[quantity < 0]).all()
    assert np.array_equal(fill[quantity == 0], price[quantity == 0])
    assert np.isfinite(commission).all() and (commission >= 0).all()
    assert (commission[quantity == 0] == 0).all()
