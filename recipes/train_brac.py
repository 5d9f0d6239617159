"""Train BRAC offline (BRAC-v by default, `--brac_variant p`) on the built-in data (or any
dataset): `python recipes/train_brac.py --help`.

Writes OUTPUT_DIR/model (load with `seqrl.from_pretrained`), OUTPUT_DIR/checkpoints (--resume)
and OUTPUT_DIR/tensorboard. Defaults: recipes/configs/brac/invertedpendulum-medium.yaml.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from seqrl.training.run import main as train  # noqa: E402


def main(argv=None) -> dict:
    return train("brac", argv, description=__doc__)


if __name__ == "__main__":
    main()
