"""A Pendulum whose observation is a Dict (as in goal-conditioned Minari datasets), for tests."""

import gymnasium as gym
import numpy as np

ENV_ID = "SeqrlTestDictPendulum-v0"


class DictPendulum(gym.ObservationWrapper):
    def __init__(self, **kwargs):
        super().__init__(gym.make("Pendulum-v1", **kwargs))
        # keys given out of order: gymnasium sorts a Dict's keys, and so must the flattening
        self.observation_space = gym.spaces.Dict({
            "velocity": gym.spaces.Box(-8.0, 8.0, (1,), np.float32),
            "angle": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
        })

    def observation(self, obs):
        return {"angle": obs[:2], "velocity": obs[2:]}


def register() -> str:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="dict_env:DictPendulum", max_episode_steps=5)
    return ENV_ID
