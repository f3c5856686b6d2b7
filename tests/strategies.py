"""Strategies the engine tests share: the same rules must trade alike in every engine."""

import rlbridge


class TwoDownDays(rlbridge.Strategy):
    """Buy one share after two lower closes; sell five bars after the fill (DESIGN.md §5)."""

    def start(self, ctx):
        self.filled_at = None

    def on_bar(self, ctx):
        if ctx.open_orders:
            return
        close = ctx.history("close", 3)[:, 0]
        if len(close) < 3:
            return
        if ctx.position(ctx.symbols[0]) == 0:
            if close[2] < close[1] < close[0]:
                ctx.order(ctx.symbols[0], 1)
        elif ctx.bar_index >= self.filled_at + 5:
            ctx.order(ctx.symbols[0], -1)

    def on_fill(self, ctx, fill):
        self.filled_at = ctx.bar_index
