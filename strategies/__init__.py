"""Built-in strategies: the RL allocation strategy and the baselines."""
