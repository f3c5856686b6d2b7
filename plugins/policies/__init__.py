"""Built-in policy plugins: the stable-baselines3 and sb3-contrib algorithms by name."""
