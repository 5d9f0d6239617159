"""seqrl: offline reinforcement learning on the Hugging Face stack."""

from seqrl.version import __version__


def from_pretrained(path_or_repo_id: str, **kwargs):
    """Load any seqrl checkpoint (local path or Hub repo id); see `seqrl.hub.from_pretrained`."""
    from seqrl.hub import from_pretrained as load

    return load(path_or_repo_id, **kwargs)


def save_pretrained(policy, directory, **kwargs):
    """Write a policy or TrajectoryModel as a checkpoint directory; see `seqrl.hub.save_pretrained`."""
    from seqrl.hub import save_pretrained as save

    return save(policy, directory, **kwargs)


def push_to_hub(policy_or_directory, repo_id: str, **kwargs) -> str:
    """Upload a policy, TrajectoryModel or checkpoint directory; see `seqrl.hub.push_to_hub`."""
    from seqrl.hub import push_to_hub as push

    return push(policy_or_directory, repo_id, **kwargs)


__all__ = ["__version__", "from_pretrained", "push_to_hub", "save_pretrained"]
