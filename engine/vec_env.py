"""Many copies of a :class:`~rlbridge.env.PortfolioEnv` stepped at once, as one SB3 ``VecEnv``.

Each copy has its own portfolio, bar and episode; a step runs the same market arithmetic as the
single environment for all copies at once, and episodes reset automatically, SB3-style: the
finished copy's last observation is in ``infos[k]["terminal_observation"]``.

The arithmetic runs in the compiled loop of :mod:`rlbridge.kernels` when the cost model's parts
describe themselves to it (every built-in does), else in numpy on ``[K, N]`` arrays (the cost
model then sees ``[K, N]`` prices and a ``CostContext`` whose ``t`` is the ``[K]`` vector of
decision bars).  Both agree with the single environment to rounding.

Observations without copying windows: the copies keep their feature windows in ring buffers
``[2W, K, N, F]`` (``W = window``; time first, so that a step's new row of every copy is one
contiguous block), every row written twice, ``W`` rows apart, so that any ``W`` consecutive rows
are one slice.  The copies step together, so their current windows sit at the same positions of
the ring and the ``[K, window, N, F]`` observation is a (transposed) view of it.  There are two
rings, used on alternate steps: a step brings the other ring up to date (two new rows per copy;
a whole window for a copy that started a new episode since that ring was last used) and leaves
the previous observation untouched.  A step therefore costs the same whatever the window, and
the previous observation stays valid while the next is made, which is all stable-baselines3's
rollout and replay buffers need (they copy what they keep).  Pass ``copy_observations=True`` for
fresh arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from .env import BANKRUPT_REWARD, PortfolioEnv
from .interfaces import CostContext
from .market import MIN_ORDER_VALUE, execute, ones, size_to_weights


class PortfolioVecEnv(VecEnv):
    """``n_envs`` copies of ``env`` (its data, costs and options), stepped together.

    Args:
        env: the environment to copy (not stepped itself).
        n_envs: how many copies.
        seed: seeds the random episode starts.
        copy_observations: return fresh observation arrays instead of views of the ring
            (slower; for callers that keep observations for more than one step).
        compiled: step with the compiled loop of :mod:`rlbridge.kernels` (the default when
            the cost model's parts describe themselves to it: every built-in does), or with
            numpy (``False``; a third-party cost model always does).
    """

    def __init__(self, env: PortfolioEnv, n_envs: int, seed: int | None = None, *,
                 copy_observations: bool = False, compiled: bool | None = None) -> None:
        self.env = env  # before VecEnv.__init__, which reads attributes through get_attr
        super().__init__(n_envs, env.observation_space, env.action_space)
        k, n = n_envs, len(env.symbols)
        self._rng = np.random.default_rng(seed)
        self._close = env.bars.close
        self._reference = env.bars.open if env.fill_at == "open" else env.bars.close
        self._features = env.features
        self._flat_features = env.features.reshape(env.features.shape[0], -1)
        self._context = CostContext(env.bars)
        self._ones = ones(n)
        window, features = env.window, env.features.shape[2]
        self._ring_rows = window
        self._rings = np.zeros((2, 2 * window, k, n, features), dtype=np.float32)
        self._stale = np.ones((2, k), dtype=bool)  # a ring that lacks a copy's whole window
        self._back = np.arange(window)  # 0, 1, ... rows before the current one
        self._last_two = np.array([1, 0] if window > 1 else [0])  # rows a step adds
        self._step = 0  # steps of all copies (they step together): the rings' clock
        self._copy_observations = copy_observations
        self._program = None
        if compiled is not False:
            from .kernels import cost_program

            # the compiled loop sizes without a rebalance band: a banded env steps in numpy
            self._program = (cost_program(env.cost_model, self._context)
                             if not env.rebalance_band else None)
            if compiled and self._program is None:
                from .errors import ConfigError

                if env.rebalance_band:
                    raise ConfigError("the compiled step sizes without a rebalance band; step "
                                      "it with compiled=False", key="env.rebalance_band")
                raise ConfigError(f"the cost model {env.cost_model!r} has no compiled form "
                                  "(kernel_parts); step it with compiled=False")
        self._kernel: Any = None
        self._rows: Any = None
        self.positions = np.zeros((k, n))
        self.cash = np.full(k, env.initial_cash)
        self.value = np.full(k, env.initial_cash)
        self.peak = np.full(k, env.initial_cash)
        self.t: np.ndarray = np.full(k, env.first, dtype=np.int64)
        self.stop = np.full(k, env.last, dtype=np.int64)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ episodes
    def _restart(self, idx: np.ndarray) -> None:
        env = self.env
        length = env.episode_length
        latest = env.last - 1 if length is None else max(env.first, env.last - length)
        if env.random_start and latest > env.first:
            starts = self._rng.integers(env.first, latest + 1, size=len(idx))
        else:
            starts = np.full(len(idx), env.first)
        self.t[idx] = starts
        self.stop[idx] = env.last if length is None else np.minimum(starts + length, env.last)
        self.positions[idx] = 0.0
        self.cash[idx] = env.initial_cash
        self.value[idx] = env.initial_cash
        self.peak[idx] = env.initial_cash
        self._fill(idx)

    # ------------------------------------------------------------------ the rings of windows
    def _fill(self, idx: np.ndarray, *, new_episode: bool = True) -> None:
        """Write the whole current window of the copies ``idx`` into this step's ring."""
        ring = self._rings[self._step % 2]
        if self._program is not None:  # the compiled loop, every row of the window
            if self._rows is None:
                from .kernels import compile_rows

                self._rows = compile_rows()
            chosen = np.zeros(self.num_envs, dtype=bool)
            chosen[idx] = True
            flat = ring.reshape(ring.shape[0], ring.shape[1], -1)
            self._rows(flat, self._flat_features, self.t, chosen, self._step, self._back,
                       self._ring_rows)
            self._mark(idx, new_episode)
            return
        rows = self.t[idx][:, None] - self._back  # [m, window]: the current row first
        slots = (self._step - self._back) % self._ring_rows
        block = np.take(self._features, rows.T, axis=0)  # [window, m, N, F]
        where = idx[None, :]
        ring[slots[:, None], where] = block
        ring[slots[:, None] + self._ring_rows, where] = block
        self._mark(idx, new_episode)

    def _mark(self, idx: np.ndarray, new_episode: bool) -> None:
        self._stale[self._step % 2, idx] = False
        if new_episode:  # the other ring still holds the old episode
            self._stale[1 - self._step % 2, idx] = True

    def _advance(self) -> None:
        """One step of every copy: bring the other ring up to date, then use it."""
        self._step += 1
        bank = self._step % 2
        stale = self._stale[bank]
        fresh: np.ndarray | slice = slice(None)
        if stale.any():
            fresh = np.flatnonzero(~stale)
            self._fill(np.flatnonzero(stale), new_episode=False)
        ring = self._rings[bank]
        width = self._ring_rows
        if self._program is not None:  # the compiled loop: no temporaries
            if self._rows is None:
                from .kernels import compile_rows

                self._rows = compile_rows()
            flat = ring.reshape(ring.shape[0], ring.shape[1], -1)  # views: no copies
            self._rows(flat, self._flat_features, self.t, ~stale, self._step, self._last_two,
                       width)
            return
        times = self.t[fresh]
        for back in self._last_two.tolist():  # the newest rows, each at its slot and slot + W
            row = np.take(self._features, times - back, axis=0)  # [m, N, F]
            slot = (self._step - back) % width
            if isinstance(fresh, slice):  # one contiguous block per write
                ring[slot] = row
                ring[slot + width] = row
            else:
                ring[slot, fresh] = row
                ring[slot + width, fresh] = row

    def _windows(self) -> np.ndarray:
        """``[K, window, N, F]``: a view of this step's ring (see the module)."""
        start = (self._step - self._ring_rows + 1) % self._ring_rows
        view = self._rings[self._step % 2, start:start + self._ring_rows].transpose(1, 0, 2, 3)
        return view.copy() if self._copy_observations else view

    def _weights(self, close: np.ndarray) -> np.ndarray:
        out = np.empty((self.num_envs, self.positions.shape[1] + 1))
        np.multiply(self.positions, close, out=out[:, :-1])
        out[:, -1] = self.cash
        out /= self.value[:, None]
        return out

    def _observation(self) -> dict[str, np.ndarray]:
        return {"features": self._windows(),
                "weights": self._weights(self._close[self.t]).astype(np.float32)}

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> dict[str, np.ndarray]:
        self._restart(np.arange(self.num_envs))
        return self._observation()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                 list[dict[str, Any]]]:
        if self._program is not None:
            return self._finish(*self._compiled_step())
        env, k = self.env, self.num_envs
        t = self.t
        close = self._close[t]
        value = self.value
        current = self._weights(close) if env.mapping.needs_current else None
        target = env.mapping(self._actions, current, batch=k)
        quantity = size_to_weights(target[:, :-1], value[:, None], close, self.positions,
                                   fractional=env.fractional, min_order_value=MIN_ORDER_VALUE,
                                   band=env.rebalance_band, cash=self.cash)
        self._context.t = t  # type: ignore[assignment]  # a [K] vector: one bar per copy
        nxt = t + 1
        price, commission = execute(quantity, self._reference[nxt], env.cost_model,
                                    self._context)
        self.positions += quantity
        self.cash -= np.vecdot(quantity, price) + commission.dot(self._ones)
        new_value = self.cash + np.vecdot(self.positions, self._close[nxt])
        self.t = nxt
        bankrupt = ~(new_value > 0.0)
        broke = bool(bankrupt.any())
        if broke:
            with np.errstate(divide="ignore", invalid="ignore"):
                reward = np.log(new_value / value)
        else:
            reward = np.log(new_value / value)
        if env.turnover_penalty:
            traded = np.vecdot(np.abs(quantity), price)
            reward -= env.turnover_penalty * traded / value
        if env.drawdown_penalty:
            np.maximum(self.peak, new_value, out=self.peak)
            reward -= env.drawdown_penalty * (1.0 - new_value / self.peak)
        if broke:
            reward[bankrupt] = BANKRUPT_REWARD
        return self._finish(reward, new_value)

    def _compiled_step(self) -> tuple[np.ndarray, np.ndarray]:
        """The arithmetic of a step in the compiled loop: ``(reward, new value)``."""
        from .actions import SOFTMAX_SCALE
        from .kernels import MAPPINGS, compile_step

        env, k = self.env, self.num_envs
        if self._kernel is None:
            self._kernel = compile_step()
        mapping = env.mapping
        actions = mapping.check(self._actions, batch=k)  # NaN, infinity, shape: ActionError
        program = self._program
        assert program is not None
        reward, new_value = np.empty(k), np.empty(k)
        self._kernel(actions, MAPPINGS[mapping.name], SOFTMAX_SCALE,
                     float(getattr(mapping, "gross_cap", 1.0)),
                     float(getattr(mapping, "trade_step", 0.0)), self.t, self.positions,
                     self.cash, self.value, self.peak, self._close, self._reference,
                     env.fractional, MIN_ORDER_VALUE, program.price_kinds, program.price_params,
                     program.price_tables, program.commission_kinds, program.commission_params,
                     float(env.turnover_penalty), float(env.drawdown_penalty), BANKRUPT_REWARD,
                     reward, new_value)
        self.t = self.t + 1
        return reward, new_value

    def _finish(self, reward: np.ndarray, new_value: np.ndarray
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """After the arithmetic: the rings, the episodes that ended, the observation."""
        k = self.num_envs
        nxt = self.t
        self._advance()
        bankrupt = ~(new_value > 0.0)
        if bankrupt.any():
            self.value = np.where(bankrupt, 0.0, new_value)
            truncated = (nxt >= self.stop) & ~bankrupt
            done = truncated | bankrupt
        else:
            self.value = new_value
            truncated = done = nxt >= self.stop
        infos: list[dict[str, Any]] = [{} for _ in range(k)]
        if done.any():
            finished = np.flatnonzero(done)
            with np.errstate(divide="ignore", invalid="ignore"):
                final = self._observation()
            for i in finished:  # copies: the ring's rows of a finished copy are rewritten
                infos[i]["terminal_observation"] = {key: np.array(v[i]) for key, v in
                                                    final.items()}
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            self._restart(finished)
        return self._observation(), reward.astype(np.float32), done, infos

    def close(self) -> None:
        return None

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._rng = np.random.default_rng(seed)
        return [seed] * self.num_envs

    def _indices(self, indices: None | int | Iterable[int]) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None,
                   **kwargs: Any) -> list[Any]:
        chosen = self._indices(indices)
        if method_name == "action_masks":  # per copy, from each copy's own weights
            masks = self.env.mapping.masks(self._weights(self._close[self.t]))
            return [masks[i] for i in chosen]
        return [getattr(self.env, method_name)(*args, **kwargs) for _ in chosen]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]
