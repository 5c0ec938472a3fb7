"""Reinforcement learning: MinAtar and Atari-100k environments, a DQN agent with plasticity methods as hooks, a
frame replay, and Atari-100k scoring (human-normalised scores, rliable aggregates). DrQ(eps) is to follow."""
