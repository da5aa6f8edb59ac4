"""`fidelity: paper | released`: which of a paper's two forms a recipe's departures default to.

Where a paper and its released code (or the engine's earlier form, where no code was released
or checked) disagree, the setting exists with both values; `fidelity` picks the value every such
setting takes when the config does not name it. A value written in the config always wins.
The table in train/README.md ("Paper and released code") gives each row's source and reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlengine._config import ConfigError

FIDELITIES = ("paper", "released")
DEFAULT_FIDELITY = "released"


@dataclass(frozen=True)
class Departure:
    recipe: str
    setting: str          # "section.key"
    paper: object
    released: object
    unless: str | None = None   # not filled when the config writes this setting (it decides the same thing)
    # the released code's value when the config trains end to end (model.visual set), where it differs
    released_end_to_end: object = None

    def value(self, fidelity: str, end_to_end: bool = False):
        if fidelity == "paper":
            return self.paper
        return self.released_end_to_end if end_to_end and self.released_end_to_end is not None else self.released


DEPARTURES = (
    # VL-BERT (seed 001 sec. 3.3 / 3.2; released code: jackroos/VL-BERT)
    Departure("vlbert", "masking.region_mask_prob", 1.0, 0.9),
    Departure("vlbert", "masking.region_targets", "hard", "soft"),
    Departure("vlbert", "model.box_geometry", "corners", "centre_size"),
    # end to end with raw pixels masked the code passes no learned vector: the features of the zeroed pixels
    Departure("vlbert", "model.masked_region_embedding", "visual", "appearance", released_end_to_end="computed"),
    # InterBERT (seed 002 sec. 3.3, 4.6, A.1; code: black4321/InterBERT)
    Departure("interbert", "masking.preset", "interbert", "interbert-released"),
    Departure("interbert", "masking.one_modality_per_row", True, False),
    Departure("interbert", "objective.itm_image", "img_token", "region_mean"),
    Departure("interbert", "objective.stage_one_itm", True, False),
    Departure("interbert", "objective.stage_one_share", 1.0 / 3.0, 0.0, unless="objective.stage_two_step"),
    # CSS-BERT (seed 000): PwCL over every pair of the batch; NSP's negatives then formed in the batch
    Departure("cssbert", "objective.nsp_negatives", "in_batch", "loader"),
    Departure("cssbert", "data.itm_negative_prob", 0.0, 0.5),
)


def departures_of(recipe: str) -> tuple[Departure, ...]:
    return tuple(d for d in DEPARTURES if d.recipe == recipe)


def check_fidelity(value, source: str) -> str:
    if value not in FIDELITIES:
        raise ConfigError(f"{source}: fidelity must be one of {', '.join(FIDELITIES)}, got {value!r}")
    return value


def fill_departures(values: dict, recipe: str, fidelity: str) -> tuple[dict, tuple[str, ...]]:
    """(a copy of the config mapping with every departure of `recipe` it does not name set to the
    `fidelity`'s value, the settings so filled). A section that is not a mapping is left as it is:
    its own parser reports it."""
    values = dict(values)
    filled = []
    model = values.get("model")
    end_to_end = isinstance(model, dict) and model.get("visual") is not None
    for departure in departures_of(recipe):
        section, key = departure.setting.split(".")
        mapping = values.get(section)
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, dict):
            continue
        if key not in mapping and not _written(values, departure.unless):
            values[section] = {**mapping, key: departure.value(fidelity, end_to_end)}
            filled.append(departure.setting)
    return values, tuple(filled)


def _written(values: dict, setting: str | None) -> bool:
    if setting is None:
        return False
    section, key = setting.split(".")
    return isinstance(values.get(section), dict) and key in values[section]


def without_filled(values: dict, filled: tuple[str, ...]) -> dict:
    """The mapping with the filled settings taken out again: what the config file wrote."""
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for setting in filled:
        section, key = setting.split(".")
        if isinstance(values.get(section), dict):
            values[section].pop(key, None)
    return values
