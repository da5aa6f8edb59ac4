"""`vlengine pretrain export`: the user's mistakes about what to export, found before anything is loaded,
and the run's config copied beside the exported weights."""

from __future__ import annotations

import os
import shutil

from vlengine._config import UserError, closest

from .run_config import CONFIG_FILE


def _tags(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("step") and os.path.isdir(os.path.join(folder, n)))


def check_export_source(checkpoint_dir: str, tag: str | None) -> None:
    """`checkpoint_dir` is a checkpoints folder (not the run folder above it) and `tag` exists in it."""
    if not os.path.isdir(checkpoint_dir):
        raise UserError(f"{checkpoint_dir} is not a folder: pass a run's checkpoints folder, "
                        "e.g. runs/main-job/checkpoints")
    inner = os.path.join(checkpoint_dir, "checkpoints")
    if os.path.isdir(inner) and not os.path.isfile(os.path.join(checkpoint_dir, "latest")):
        raise UserError(f"{checkpoint_dir} is a run folder: pass its checkpoints folder, {inner}")
    tags = _tags(checkpoint_dir)
    if not tags and not os.path.isfile(os.path.join(checkpoint_dir, "latest")):
        raise UserError(f"{checkpoint_dir} holds no checkpoint (no `latest` file, no step* folders)")
    if tag is not None and tag not in tags:
        guess = closest(tag, tags)
        hint = f"did you mean {guess!r}?" if guess else f"tags there: {', '.join(tags) or 'none'}"
        raise UserError(f"no checkpoint tag {tag!r} in {checkpoint_dir} ({hint})")


def copy_run_config(checkpoint_dir: str, out: str) -> str | None:
    """Copy the run's config.yaml (written beside its checkpoints) to OUT's stem + .config.yaml."""
    source = os.path.join(os.path.dirname(os.path.abspath(checkpoint_dir)), CONFIG_FILE)
    if not os.path.isfile(source):
        return None
    stem = out[:-len(".safetensors")] if out.endswith(".safetensors") else out
    target = stem + ".config.yaml"
    shutil.copyfile(source, target)
    return target
