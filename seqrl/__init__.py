"""seqrl: offline reinforcement learning on the Hugging Face stack."""

__version__ = "0.1.0"


def from_pretrained(path_or_repo_id: str, **kwargs):
    """Load any seqrl checkpoint (local path or Hub repo id); see `seqrl.hub.from_pretrained`."""
    from seqrl.hub import from_pretrained as _from_pretrained

    return _from_pretrained(path_or_repo_id, **kwargs)
