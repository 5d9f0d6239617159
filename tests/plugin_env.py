"""An environment package that registers its env on import, as gymnasium_robotics does, for tests."""

import gymnasium as gym

ENV_ID = "SeqrlTestPluginPendulum-v0"


class PluginPendulum(gym.Wrapper):
    def __init__(self, **kwargs):
        super().__init__(gym.make("Pendulum-v1", **kwargs))


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="plugin_env:PluginPendulum", max_episode_steps=6)
