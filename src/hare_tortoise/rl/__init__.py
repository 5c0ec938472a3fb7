"""Reinforcement learning: MinAtar, a DQN agent with plasticity methods as hooks, a frame replay, and Atari-100k
scoring (human-normalised scores, rliable aggregates). Atari-100k environments and DrQ(eps) are to follow."""
