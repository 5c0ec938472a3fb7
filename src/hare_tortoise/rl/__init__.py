"""Reinforcement learning: Atari-100k scoring and aggregates, replay (agents and environments to follow)."""
