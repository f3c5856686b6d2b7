"""Live trading: the runner, its order journal and its clock (DESIGN.md section 7).

The same strategy that was backtested trades live by changing ``[broker] name``: the runner
builds the same ``BarContext`` from the latest bars and the broker's positions, journals every
order in the store before sending it with a deterministic client order id, and reconciles the
journal with the broker on every cycle and after a restart, so no order is sent twice and no
fill is lost.
"""

from .clock import Decision, MarketClosed, bar_decision, decide_at
from .journal import Entry, Journal, client_order_id, deployment_id
from .runner import CycleReport, LiveContext, LiveRunner, Session
from .session import live

__all__ = ["CycleReport", "Decision", "Entry", "Journal", "LiveContext", "LiveRunner",
           "MarketClosed", "Session", "bar_decision", "client_order_id", "decide_at",
           "deployment_id", "live"]
