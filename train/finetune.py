"""Fine-tuning driver: the same as `vlengine finetune`, as a script for launchers that take one.

    python train/finetune.py --config train/configs/finetune/vqa_vlbert_base.yaml --init EXPORT.safetensors
    deepspeed --num_gpus 8 train/finetune.py --config train/configs/finetune/vqa_vlbert_base.yaml --init ...

Every option of `vlengine finetune` works here (--task, --init, --set, --output-dir, --no-resume,
--print-config); DeepSpeed's launcher adds --local_rank, which is accepted and ignored (the rank comes
from the environment). The code lives in vlengine.training.finetune_cli.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run from a checkout that was not pip-installed
    sys.path.insert(0, ROOT)

from vlengine.training.engine import exit_process  # noqa: E402
from vlengine.training.finetune_cli import main  # noqa: E402

if __name__ == "__main__":
    exit_process(main())
