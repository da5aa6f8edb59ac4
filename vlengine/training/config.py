"""The pretraining config: one typed object read from YAML or JSON.

    recipe: vlbert | interbert | semvlp | cssbert
    model: {preset: base|large|tiny, ...}   vlengine.models.VLConfig fields ("vocab_size: auto" = the corpus vocabulary)
    objective: {...}                         loss weights / schedule of the recipe (vlengine.training.recipes)
    masking: {...}                           masking policy settings (vlengine.data.masking)
    data: {corpus: embedded | DIR, train: DIR, heldout: DIR, text_corpus: FILE, text_ratio, itm_negative_prob, ...}
    deepspeed: FILE.json (relative to this file) or an inline DeepSpeed config
    train: {...}                             vlengine.training.settings.TrainSettings
    eval: {...}                              held-out evaluation (vlengine.training.main_eval)

Unknown top-level keys are an error: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field

from .settings import TrainSettings

RECIPES = ("vlbert", "interbert", "semvlp", "cssbert")


@dataclass
class PretrainConfig:
    recipe: str = "vlbert"
    model: dict = field(default_factory=dict)
    objective: dict = field(default_factory=dict)
    masking: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    deepspeed: dict | str = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict, base_dir: str | None = None, source: str = "config") -> "PretrainConfig":
        if not isinstance(values, dict):
            raise TypeError(f"{source}: expected a mapping at the top level, got {type(values).__name__}")
        known = {"recipe", "model", "objective", "masking", "data", "deepspeed", "train", "eval"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {unknown}; known: {sorted(known)}")
        values = copy.deepcopy(values)
        recipe = values.get("recipe", "vlbert")
        if recipe not in RECIPES:
            raise ValueError(f"{source}: recipe must be one of {RECIPES}, got {recipe!r}")
        ds = values.get("deepspeed", {})
        if isinstance(ds, str) and base_dir and not os.path.isabs(ds):
            ds = os.path.join(base_dir, ds)
        for name in ("model", "objective", "masking", "data", "eval"):
            if not isinstance(values.get(name, {}), dict):
                raise ValueError(f"{source}: section {name!r} must be a mapping")
        try:
            train = TrainSettings.from_dict(values.get("train", {}))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err
        return cls(recipe=recipe, model=values.get("model", {}), objective=values.get("objective", {}),
                   masking=values.get("masking", {}), data=values.get("data", {}), deepspeed=ds, train=train,
                   eval=values.get("eval", {}))

    @classmethod
    def from_file(cls, path: str) -> "PretrainConfig":
        try:
            with open(path) as f:
                text = f.read()
        except OSError as err:
            raise ValueError(f"cannot read pretraining config {path}: {err}") from err
        try:
            if path.endswith((".yaml", ".yml")):
                import yaml
                values = yaml.safe_load(text)
            else:
                values = json.loads(text)
        except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
            raise ValueError(f"pretraining config {path} does not parse: {err}") from err
        return cls.from_dict(values or {}, base_dir=os.path.dirname(os.path.abspath(path)), source=path)

    def with_overrides(self, assignments: list[str]) -> "PretrainConfig":
        """Apply `section.key=value` overrides (values parsed as YAML: 100, 1e-4, true, [1, 2])."""
        import yaml

        values = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not of the form section.key=value")
            path, raw = item.split("=", 1)
            keys = path.split(".")
            target = values
            for key in keys[:-1]:
                if not isinstance(target.get(key, {}), dict):
                    raise ValueError(f"override {item!r}: {key!r} is not a section")
                target = target.setdefault(key, {})
            target[keys[-1]] = yaml.safe_load(raw)
        return PretrainConfig.from_dict(values, source="config with overrides")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["train"]["adam_betas"] = list(self.train.adam_betas)
        return out
