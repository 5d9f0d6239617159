"""Plan with a pretrained Trajectory Transformer (beam search) and evaluate it in its environment.

    python recipes/plan_tt.py                       # the model `accelerate launch recipes/train_tt.py` wrote
    python recipes/plan_tt.py --checkpoint user/tt-invertedpendulum --episodes 20
    python recipes/plan_tt.py --config recipes/configs/plan/invertedpendulum-medium.yaml --beam_width 16

The same as `seqrl plan` (seqrl/training/plan.py); `--help` lists every option.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from seqrl.training.plan import main as plan  # noqa: E402


def main(argv=None):
    return plan(argv)


if __name__ == "__main__":
    main()
