"""Save and load value-based policies (BC, CQL, IQL, AWAC) in seqrl's one checkpoint format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from seqrl.hub import CheckpointError, read_metadata, render_card, write_metadata

WEIGHTS_NAME = "model.safetensors"


# seqrl.json keys that describe the network itself (rebuilt from the config), not the run
_NETWORK_KEYS = ("algorithm", "config", "observation_dim", "action_dim", "seqrl_version")


def evaluation_line(metadata: dict[str, Any]) -> str:
    """The model card's one-line evaluation, from the metadata's `evaluation` (empty if none)."""
    e = metadata.get("evaluation") or {}
    if not e:
        return ""
    episodes = (metadata.get("training") or {}).get("eval_episodes")
    line = f"Mean return over {episodes} episodes: {e['return_mean']:.2f} ± {e['return_stderr']:.2f} (s.e.)"
    if "normalized_score" in e:
        line += f"; normalized score {e['normalized_score']:.1f}"
    return line


def save_policy(algorithm, directory, metadata: dict[str, Any], card_context: dict | None = None) -> Path:
    """Weights (safetensors), seqrl.json (algorithm, config, dims, env) and a model card."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in algorithm.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    meta = {"algorithm": algorithm.config.algorithm, "config": algorithm.config.to_dict(),
            "observation_dim": algorithm.obs_dim, "action_dim": algorithm.act_dim, **metadata}
    write_metadata(directory, meta)
    context = {**meta, "parameters": f"{sum(p.numel() for p in algorithm.parameters()):,}",
               "evaluation": evaluation_line(meta), **(card_context or {})}
    (directory / "README.md").write_text(render_card("policy.md.j2", context))
    return directory


def load_policy(directory, metadata: dict | None = None, device="cpu"):
    from seqrl.algos import ALGORITHMS, build_algorithm, config_from_dict

    directory = Path(directory)
    metadata = metadata or read_metadata(directory)
    name = metadata.get("algorithm")
    if name not in ALGORITHMS:
        raise CheckpointError(f"{directory}: unknown algorithm {name!r}; seqrl knows {sorted(ALGORITHMS)}")
    if not (directory / WEIGHTS_NAME).exists():
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
    config = config_from_dict(metadata["config"])
    algorithm = build_algorithm(config, metadata["observation_dim"], metadata["action_dim"])
    state = load_file(str(directory / WEIGHTS_NAME))
    missing, unexpected = algorithm.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{directory}: weights do not fit a {name} network "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    algorithm.metadata = {k: v for k, v in metadata.items() if k not in _NETWORK_KEYS}
    return algorithm.to(device).eval()
