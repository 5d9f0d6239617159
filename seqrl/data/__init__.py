"""Data pipeline: episodes -> (token windows | transition tensors)."""

from seqrl.data.discretize import Discretizer
from seqrl.data.episodes import EpisodeDataset
from seqrl.data.sources import load_dataset
from seqrl.data.transitions import BufferConfig, ReplayBuffer, TransitionBuffer
from seqrl.data.validation import DataError
from seqrl.data.windows import TokenizerConfig, TokenWindows

__all__ = ["DataError", "Discretizer", "EpisodeDataset", "BufferConfig", "ReplayBuffer", "TransitionBuffer",
           "TokenizerConfig", "TokenWindows", "load_dataset"]
