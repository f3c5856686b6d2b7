"""The built-in risk plugins: the pre-trade limits of ``[risk]`` as ``check_order`` hooks.

The kill switch (``max_daily_loss``, ``max_drawdown``) is not an order check: it lives in
:mod:`rlbridge.risk` as a strategy wrapper that every run applies.
"""
