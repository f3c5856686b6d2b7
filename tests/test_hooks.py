"""The hook contract: docs/plugin_hooks.md matches the code, and each hook behaves as documented."""

import inspect
import re
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import rlbridge
from rlbridge import hookspecs
from rlbridge.cli import build_cli
from rlbridge.interfaces import Fill, Order
from rlbridge.manager import make_plugin_manager
from rlbridge.registry import KINDS

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin_hooks.md"


def specs():
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "rlbridge_spec")}


def signature_text(name, fn):
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def documented():
    """``### name`` headings with the signature in the code block that follows."""
    text = DOC.read_text()
    return dict(re.findall(r"^### (\w+)\n+```python\n(\w+\(.*\) -> .+)\n```", text, flags=re.M))


def test_every_hook_is_documented_with_its_exact_signature():
    docs = documented()
    code = {name: signature_text(name, fn) for name, fn in specs().items()}
    assert sorted(docs) == sorted(code), "hooks in docs/plugin_hooks.md differ from rlbridge.hookspecs"
    for name, sig in code.items():
        assert docs[name] == sig, f"{name}: documented {docs[name]!r}, code says {sig!r}"


def test_every_hook_has_a_docstring_and_a_test_here():
    here = sys.modules[__name__]
    for name, fn in specs().items():
        assert fn.__doc__ and "Args:" in fn.__doc__, f"{name} needs a Google-style docstring"
        assert callable(getattr(here, f"test_hook_{name}", None)), f"no test_hook_{name}"


def test_only_check_order_is_firstresult_and_none_is_historic():
    flags = {name: (fn.rlbridge_spec["firstresult"], fn.rlbridge_spec["historic"])
             for name, fn in specs().items()}
    assert {n for n, (first, _) in flags.items() if first} == {"check_order"}
    assert not any(historic for _, historic in flags.values())


def bare_pm():
    return make_plugin_manager(builtins=False, entrypoints=False, disabled=(), warn=False)


class Registers:
    """One plugin implementing every registration hook."""

    def __init__(self):
        for kind, (hook_name, _) in KINDS.items():
            setattr(self, hook_name, self._impl(kind))

    @staticmethod
    def _impl(kind):
        @rlbridge.hookimpl(specname=KINDS[kind][0])
        def impl(register):
            register(f"my_{kind}", dict, description=f"a {kind} entry")
        return impl


def _check_registration(kind):
    pm = bare_pm()
    pm.register(Registers(), name="registers")
    registry = pm.registries[kind]
    assert registry.names() == [f"my_{kind}"]
    assert registry.info(f"my_{kind}").plugin == "registers"
    assert registry.create(f"my_{kind}", {"a": 1}) == {"a": 1}


def test_hook_register_feeds():
    _check_registration("feeds")


def test_hook_register_features():
    _check_registration("features")


def test_hook_register_policies():
    _check_registration("policies")


def test_hook_register_cost_models():
    _check_registration("costs")


def test_hook_register_brokers():
    _check_registration("brokers")


def test_hook_register_engines():
    _check_registration("engines")


def test_hook_register_strategies():
    _check_registration("strategies")


def test_hook_register_commands():
    class Hello:
        @rlbridge.hookimpl
        def register_commands(self, cli):
            @cli.command("hello")
            @click.argument("who")
            def hello(who):
                """Say hello."""
                click.echo(f"hello {who}")

    pm = bare_pm()
    pm.register(Hello(), name="hello")
    result = CliRunner().invoke(build_cli(pm), ["hello", "quant"])
    assert (result.exit_code, result.output) == (0, "hello quant\n")


def test_hook_check_order():
    class Cap:
        @rlbridge.hookimpl
        def check_order(self, order):  # a subset of the arguments is fine
            return "order too large" if abs(order.quantity) > 100 else None

    class Allow:
        @rlbridge.hookimpl
        def check_order(self, order, context):
            return None

    pm = bare_pm()
    pm.register(Cap(), name="cap")
    pm.register(Allow(), name="allow")
    assert pm.hook.check_order(order=Order("SPY", 10), context=None) is None
    assert pm.hook.check_order(order=Order("SPY", -500), context=None) == "order too large"


class Recorder:
    def __init__(self):
        self.calls = []

    @rlbridge.hookimpl
    def before_run(self, run):
        self.calls.append(("before_run", run))

    @rlbridge.hookimpl
    def after_fill(self, fill):
        self.calls.append(("after_fill", fill.symbol))

    @rlbridge.hookimpl
    def after_run(self, run, result):
        self.calls.append(("after_run", run, result))

    @rlbridge.hookimpl
    def on_run_error(self, error):
        self.calls.append(("on_run_error", str(error)))


@pytest.fixture
def recorder():
    pm = bare_pm()
    rec = Recorder()
    pm.register(rec, name="recorder")
    return pm, rec


def test_hook_before_run(recorder):
    pm, rec = recorder
    assert pm.hook.before_run(run="run-1") == []
    assert rec.calls == [("before_run", "run-1")]


def test_hook_after_fill(recorder):
    pm, rec = recorder
    pm.hook.after_fill(run="run-1", fill=Fill("AGG", 3, 110.5, 1.0, "2019-01-02"))
    assert rec.calls == [("after_fill", "AGG")]


def test_hook_after_run(recorder):
    pm, rec = recorder
    pm.hook.after_run(run="run-1", result={"final_value": 1.0})
    assert rec.calls == [("after_run", "run-1", {"final_value": 1.0})]


def test_hook_on_run_error(recorder):
    pm, rec = recorder
    pm.hook.on_run_error(run="run-1", error=ValueError("bad bar"))
    assert rec.calls == [("on_run_error", "bad bar")]
