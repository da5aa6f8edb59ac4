"""Pretraining driver: the same as `vlengine pretrain`, as a script for launchers that take one.

    python train/pretrain.py --config train/configs/vlbert_base_bf16.yaml
    deepspeed --num_gpus 8 train/pretrain.py --config train/configs/vlbert_base_bf16.yaml
    deepspeed --hostfile hostfile train/pretrain.py --config train/configs/vlbert_base_v100_fp16.yaml

Every option of `vlengine pretrain` works here (--set, --output-dir, --no-resume, --print-config);
DeepSpeed's launcher adds --local_rank, which is accepted and ignored (the rank comes from the
environment). The code lives in vlengine.training.cli.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run from a checkout that was not pip-installed
    sys.path.insert(0, ROOT)

from vlengine.training.cli import main  # noqa: E402
from vlengine.training.engine import exit_process  # noqa: E402

if __name__ == "__main__":
    exit_process(main())
