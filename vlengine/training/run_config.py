"""A run's resolved config on disk (`OUTPUT_DIR/config.yaml`) and what a resume may not change.

A resumed run loads the model, the optimizer (its param groups hold lr, weight decay, betas, eps)
and the LR schedule from the checkpoint, and replays the data and masking from the seed. A
config that changes one of those would be silently overridden by the checkpoint, or would
change a run that claims to continue: such a change is refused with one line. Everything else
(logging, saving, evaluation, max_steps, ...) applies to the resumed run.
"""

from __future__ import annotations

import os

from vlengine._config import ConfigError

CONFIG_FILE = "config.yaml"
FIXED_TRAIN_SETTINGS = ("seed", "total_steps", "warmup_steps", "lr", "weight_decay", "adam_betas", "adam_eps",
                        "lr_mult")


def changed_settings(saved: dict, current: dict) -> list[tuple[str, object, object]]:
    """(name, saved value, current value) of every setting a resume cannot change."""
    changes = []
    for key in ("recipe", "init"):   # init: a fine-tuning run's starting weights
        if saved.get(key) != current.get(key):
            changes.append((key, saved.get(key), current.get(key)))
    # fidelity sets masking and objective defaults that the checkpoint's run trained with; a config
    # written before the key existed is a released-form run
    if "recipe" in saved and saved.get("fidelity", "released") != current.get("fidelity", "released"):
        changes.append(("fidelity", saved.get("fidelity", "released"), current.get("fidelity", "released")))
    for section in ("model", "task"):  # task: a fine-tuning run's head, loss, inputs
        saved_section, section_now = saved.get(section) or {}, current.get(section) or {}
        for key in sorted(set(saved_section) | set(section_now)):
            old = saved_section.get(key, _model_default(key) if section == "model" else None)
            if old != section_now.get(key):
                changes.append((f"{section}.{key}", old, section_now.get(key)))
    saved_train, train = saved.get("train") or {}, current.get("train") or {}
    for key in FIXED_TRAIN_SETTINGS:
        old, new = saved_train.get(key), train.get(key)
        if isinstance(old, (list, tuple)):
            old, new = list(old), list(new) if isinstance(new, (list, tuple)) else new
        if old != new:
            changes.append((f"train.{key}", old, new))
    return changes


def _model_default(key: str):
    """A model setting a saved config lacks was written before the setting existed: the run used
    its default (None for an unknown key)."""
    import dataclasses

    from vlengine.models import VLConfig

    for f in dataclasses.fields(VLConfig):
        if f.name == key:
            return f.default
    return None


def refuse_changed_settings(saved: dict | None, current: dict | None, where: str) -> None:
    """Raise a one-line UserError when `current` changes what the run saved in `where` cannot change."""
    if not saved or not current:
        return  # a checkpoint from before configs were stored, or a caller without a config
    changes = changed_settings(saved, current)
    if not changes:
        return
    listed = "; ".join(f"{name} {old!r} there, {new!r} now" for name, old, new in changes[:3])
    more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
    if any(name in ("recipe", "init") or name.startswith(("model.", "task.")) for name, _, _ in changes):
        raise ConfigError(f"{where} holds a checkpoint of a different model ({listed}{more}): pass --no-resume "
                        "to start over there, or choose another --output-dir")
    raise ConfigError(f"cannot resume {where} with changed settings ({listed}{more}): the checkpoint fixes them; "
                    "restore them, or pass --no-resume to start over")


def read_saved_config(output_dir: str) -> dict | None:
    """The config a run in `output_dir` wrote when it started, or None."""
    import yaml

    path = os.path.join(output_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            saved = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None  # unreadable: the checkpoint's own copy is compared after loading
    return saved if isinstance(saved, dict) else None


def check_resume_target(output_dir: str | None, resume: bool, current: dict) -> None:
    """Before anything starts: refuse to resume a checkpoint of another model or with fixed settings changed."""
    if not output_dir or not resume or not os.path.isfile(os.path.join(output_dir, "checkpoints", "latest")):
        return
    refuse_changed_settings(read_saved_config(output_dir), current, output_dir)


def write_run_config(path: str, config: dict) -> None:
    """The resolved config as YAML (atomically: a reader sees the old file or the new one)."""
    import yaml

    from vlengine.atomic import write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, yaml.safe_dump(config, sort_keys=False))


def last_checkpoint(output_dir: str | None) -> str | None:
    """The folder `checkpoints/latest` names, or None."""
    if not output_dir:
        return None
    latest = os.path.join(output_dir, "checkpoints", "latest")
    try:
        with open(latest) as f:
            tag = f.read().strip()
    except OSError:
        return None
    return os.path.join(output_dir, "checkpoints", tag) if tag else None
