"""Train a Trajectory Transformer.

    accelerate launch recipes/train_tt.py                       # built-in data, CPU-sized config
    accelerate launch recipes/train_tt.py --config recipes/configs/tt/hopper-medium-v2.yaml --dataset ...
    accelerate launch --multi_gpu --num_processes 2 recipes/train_tt.py   # two processes (CPU: gloo)

Writes OUTPUT_DIR/model (a checkpoint for `seqrl.from_pretrained` and
`TrajectoryTransformerModel.from_pretrained`), OUTPUT_DIR/checkpoints (resumable with
--resume) and OUTPUT_DIR/tensorboard. The same as `seqrl train tt`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from seqrl.training.run import main as train  # noqa: E402


def main(argv=None) -> dict:
    return train("tt", argv, description=__doc__)


if __name__ == "__main__":
    main()
