"""The pretraining config: typed sections read from YAML or JSON, every key checked when the file is read.

    recipe: vlbert | interbert | semvlp | cssbert
    fidelity: released | paper               the value of every paper-vs-code departure the file does not
                                             name (vlengine.training.fidelity; table in train/README.md)
    model: {preset: base|large|tiny, ...}   vlengine.models.VLConfig fields ("vocab_size: auto" = the corpus vocabulary)
    objective: {...}                         the recipe's loss weights / schedule (sections.VLBertObjective, ...)
    masking: {...}                           sections.MaskingSection
    data: {corpus: embedded | DIR, ...}      sections.DataSection
    deepspeed: FILE.json or an inline DeepSpeed config
    train: {...}                             vlengine.training.settings.TrainSettings
    eval: {...}                              sections.EvalSection

Paths in a config file (deepspeed, data.corpus, model.bert_checkpoint) are relative to the file's
folder; paths given with `--set` are relative to the working directory; train.output_dir is always
relative to the working directory (where the run writes). `vlengine pretrain` with no --config runs
the shipped main_job.yaml (train/configs/ in a checkout, vlengine/configs/ once installed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from vlengine._config import ConfigError, check_mapping, to_plain, unknown_key_message

from .fidelity import DEFAULT_FIDELITY, check_fidelity, fill_departures, without_filled
from .sections import OBJECTIVES, RECIPES, DataSection, EvalSection, MaskingSection, ModelSection
from .settings import TrainSettings

SECTIONS = ("recipe", "fidelity", "model", "objective", "masking", "data", "deepspeed", "train", "eval")
MAIN_JOB = "main_job.yaml"


def shipped_config_dir() -> str:
    """Where the shipped recipes live: vlengine/configs in an installed package, train/configs in a checkout."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in (os.path.join(package, "configs"), os.path.join(os.path.dirname(package), "train", "configs")):
        if os.path.isdir(folder):
            return folder
    raise ConfigError(f"the shipped configs are missing (looked in {package}/configs and "
                      f"{os.path.dirname(package)}/train/configs): reinstall vlengine")


def shipped_config(name: str = MAIN_JOB) -> str:
    return os.path.join(shipped_config_dir(), name)


@dataclass
class PretrainConfig:
    recipe: str = "vlbert"
    fidelity: str = DEFAULT_FIDELITY
    model: ModelSection = field(default_factory=ModelSection)
    objective: object = field(default_factory=OBJECTIVES["vlbert"])
    masking: MaskingSection = field(default_factory=MaskingSection)
    data: DataSection = field(default_factory=DataSection)
    deepspeed: dict | str = field(default_factory=dict)   # as written: a JSON path (made absolute) or inline
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSection = field(default_factory=EvalSection)
    deepspeed_config: dict = field(default_factory=dict, repr=False)  # the DeepSpeed config the run uses
    source: str = field(default="config", repr=False, compare=False)
    notes: list = field(default_factory=list, repr=False, compare=False)  # adjustments the user should see
    filled: tuple = field(default=(), repr=False, compare=False)  # settings `fidelity` chose (not in the file)

    @classmethod
    def from_dict(cls, values: dict, base_dir: str | None = None, source: str = "config") -> "PretrainConfig":
        values = check_top_level(values, SECTIONS, source)
        recipe = values.get("recipe", "vlbert")
        if recipe not in RECIPES:
            raise ConfigError(f"{source}: recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
        fidelity = check_fidelity(values.get("fidelity", DEFAULT_FIDELITY), source)
        values, filled = fill_departures(values, recipe, fidelity)
        ds_source = deepspeed_source(values, base_dir)
        notes = []
        cfg = cls(recipe=recipe, fidelity=fidelity,
                   model=ModelSection.from_mapping(values.get("model"), source, base_dir),
                   objective=_objective(recipe, values.get("objective"), source),
                   masking=_section(MaskingSection, values.get("masking"), source, "masking"),
                   data=DataSection.from_mapping(values.get("data"), source, base_dir),
                   deepspeed=ds_source, deepspeed_config=read_deepspeed_config(ds_source, source),
                   train=_train(values.get("train"), source, notes),
                   eval=_section(EvalSection, values.get("eval"), source, "eval"),
                   source=source, notes=notes, filled=filled)
        _check_across_sections(cfg, source)
        return cfg

    @classmethod
    def from_file(cls, path: str) -> "PretrainConfig":
        return cls.from_dict(read_config_file(path, "pretraining"), base_dir=os.path.dirname(os.path.abspath(path)),
                             source=path)

    def with_overrides(self, assignments: list[str]) -> "PretrainConfig":
        """Apply `section.key=value` overrides (values parsed as YAML: 100, 1e-4, true, [1, 2])."""
        return apply_overrides(self, assignments, SECTIONS)

    def check_before_run(self) -> None:
        """What a run needs and a file alone cannot show: the folders it names exist, DeepSpeed settings are there."""
        if not self.deepspeed_config:
            raise ConfigError(f"{self.source}: no deepspeed section (a DeepSpeed JSON file, relative to the config "
                              "file, or inline settings with train_micro_batch_size_per_gpu)")
        self.data.check_corpus(self.source)
        if self.model.bert_checkpoint and not os.path.isdir(self.model.bert_checkpoint):
            raise ConfigError(f"{self.source}: model.bert_checkpoint {self.model.bert_checkpoint!r} is not a folder "
                              "(a path in a config file is relative to the file)")
        visual = self.model.visual
        if visual is not None and visual.weights not in (None, "corpus") and not os.path.isfile(visual.weights):
            raise ConfigError(f"{self.source}: model.visual.weights {visual.weights!r} is not a file (a torchvision "
                              "ResNet state dict; a path in a config file is relative to the file)")

    def to_dict(self) -> dict:
        """The fully resolved config (inline DeepSpeed settings, absolute paths) as YAML-safe values."""
        return {"recipe": self.recipe, "fidelity": self.fidelity, "model": self.model.to_dict(), "objective": to_plain(self.objective),
                "masking": to_plain(self.masking), "data": to_plain(self.data),
                "deepspeed": to_plain(self.deepspeed_config), "train": to_plain(self.train),
                "eval": to_plain(self.eval)}

    def as_written(self) -> dict:
        """to_dict() without the settings `fidelity` filled in: what `--set` edits, so that
        `--set fidelity=paper` moves every departure the file left to it."""
        return without_filled(self.to_dict(), self.filled)

    def to_yaml(self) -> str:
        import yaml
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def check_top_level(values, sections: tuple[str, ...], source: str) -> dict:
    """A config file's top level: a mapping (empty file: {}) whose keys are all sections."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(values).__name__}")
    for key in values:
        if key not in sections:
            raise ConfigError(unknown_key_message(key, sections, source, ""))
    return values


def deepspeed_source(values: dict, base_dir: str | None):
    """The `deepspeed:` entry as written: a JSON path made absolute (relative to the config file), or inline."""
    ds_source = values.get("deepspeed", {})
    if isinstance(ds_source, str) and base_dir and not os.path.isabs(ds_source):
        ds_source = os.path.normpath(os.path.join(base_dir, ds_source))
    return ds_source


def read_config_file(path: str, what: str):
    """The parsed content of a config file; a missing file is one line naming it."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read {what} config {path}: {err.strerror or err}") from None
    return parse_text(text, path)


def apply_overrides(cfg, assignments: list[str], sections: tuple[str, ...]):
    """`cfg` (a config class with to_dict / from_dict(values, base_dir, source) / notes / source) with
    `section.key=value` overrides applied, values parsed as YAML. Each one is checked as it is applied,
    so an error names the `--set` that caused it; a top-level key (`--set init=PATH`) is allowed too."""
    import yaml

    for item in assignments:
        source = f"--set {item}"
        if "=" not in item:
            raise ConfigError(f"{source}: not of the form section.key=value (e.g. --set train.lr=1e-4)")
        path, raw = item.split("=", 1)
        keys = path.split(".")
        if keys[0] not in sections:
            raise ConfigError(unknown_key_message(keys[0], sections, source, ""))
        # a config whose defaults depend on another setting (PretrainConfig's `fidelity`) gives
        # the values as written, so the defaults follow an override of that setting
        values = cfg.as_written() if hasattr(cfg, "as_written") else cfg.to_dict()
        target = values
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(target.get(key, {}), dict):
                raise ConfigError(f"{source}: {'.'.join(keys[:depth + 1])} is not a section")
            target = target.setdefault(key, {})
        try:
            target[keys[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"{source}: the value does not parse as YAML ({one_line(err)})") from None
        notes, origin = cfg.notes, cfg.source
        cfg = type(cfg).from_dict(values, base_dir=os.getcwd(), source=source)
        cfg.notes = notes + cfg.notes
        cfg.source = origin
    return cfg


def _check_across_sections(cfg: PretrainConfig, source: str) -> None:
    """Settings of two sections that only work together."""
    if (cfg.model.visual is not None) != cfg.data.images:
        raise ConfigError(f"{source}: end-to-end training needs both model.visual (the front-end) and data.images: "
                          f"true (raw images in the batches); got model.visual "
                          f"{'set' if cfg.model.visual is not None else 'unset'}, data.images {cfg.data.images}")
    if cfg.model.settings.get("masked_region_embedding") == "computed" and cfg.model.visual is None:
        raise ConfigError(f"{source}: model.masked_region_embedding 'computed' keeps a masked RoI's features as the "
                          f"end-to-end front-end computed them from the masked input; precomputed features would show "
                          f"the masked RoI (set model.visual, or use 'appearance' or 'visual')")
    if cfg.model.visual is not None and cfg.recipe != "vlbert":
        raise ConfigError(f"{source}: model.visual (end to end from raw images) is built for recipe vlbert, "
                          f"not {cfg.recipe}")
    if cfg.data.qa is not None and cfg.recipe != "semvlp":
        raise ConfigError(f"{source}: data.qa (image-QA pretraining) is a task of recipe semvlp, not {cfg.recipe}")
    if cfg.recipe == "cssbert" and cfg.objective.nsp_negatives == "in_batch":
        if cfg.data.itm_negative_prob > 0:
            raise ConfigError(f"{source}: objective.nsp_negatives 'in_batch' forms NSP's negatives in the batch and "
                              f"reads every loader pair as matched: data.itm_negative_prob must be 0, got "
                              f"{cfg.data.itm_negative_prob}")
        if cfg.objective.contrastive_inputs != "separate":
            raise ConfigError(f"{source}: objective.nsp_negatives 'in_batch' needs objective.contrastive_inputs "
                              "'separate' (the joint pass of a re-paired row is no matched pair)")


def _section(cls, mapping, source: str, name: str):
    from vlengine._config import from_mapping
    return from_mapping(cls, mapping, source, name)


def _objective(recipe: str, mapping, source: str):
    return _section(OBJECTIVES[recipe], mapping, source, "objective")


def _train(mapping, source: str, notes: list) -> TrainSettings:
    """TrainSettings; a warm-up longer than the schedule (e.g. `--set train.total_steps=50` on the main
    job's 100 warm-up steps) is shortened to the schedule, with a note, instead of refused."""
    values = check_mapping(TrainSettings, mapping, source, "train")
    defaults = TrainSettings()
    total = values.get("total_steps", defaults.total_steps)
    warmup = values.get("warmup_steps", defaults.warmup_steps)
    if 0 < total < warmup:
        values["warmup_steps"] = total
        notes.append(f"train.warmup_steps {warmup} is longer than train.total_steps {total}: "
                     f"warm-up shortened to {total} steps")
    return TrainSettings.from_dict(values, source)


def one_line(err: Exception) -> str:
    """A parser's message on one line: YAML errors span several lines with a caret drawing."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    if isinstance(err, json.JSONDecodeError):
        return f"line {err.lineno}, column {err.colno}: {err.msg}"
    return " ".join(str(err).split())


def parse_text(text: str, path: str):
    """YAML (.yaml/.yml) or JSON by the file's suffix."""
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml
            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        kind = "YAML" if path.endswith((".yaml", ".yml")) else "JSON"
        raise ConfigError(f"{path} is not valid {kind}: {one_line(err)}") from None


def read_deepspeed_config(ds_source, source: str) -> dict:
    """The DeepSpeed config a `deepspeed:` entry names (a JSON file or inline), checked now."""
    if isinstance(ds_source, str):
        try:
            with open(ds_source) as f:
                text = f.read()
        except OSError as err:
            raise ConfigError(f"{source}: cannot read deepspeed config {ds_source}: {err.strerror or err} "
                              "(a path in a config file is relative to the file)") from None
        try:
            ds = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source}: deepspeed config {ds_source} is not valid JSON: {one_line(err)}") from None
        where = f"deepspeed config {ds_source}"
    elif isinstance(ds_source, dict):
        if not ds_source:
            return {}  # no section: a run refuses it (check_before_run); code that builds its own engine may not
        ds, where = json.loads(json.dumps(ds_source)), f"{source}, section 'deepspeed'"
    else:
        raise ConfigError(f"{source}: deepspeed must be a JSON file name or a mapping, got {ds_source!r}")
    if not isinstance(ds, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(ds).__name__}")
    micro = ds.get("train_micro_batch_size_per_gpu", 0)
    if isinstance(micro, bool) or not isinstance(micro, int) or micro <= 0:
        raise ConfigError(f"{where}: train_micro_batch_size_per_gpu must be a positive integer, got {micro!r}")
    return ds
