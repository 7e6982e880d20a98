"""Training recipes: the starting ``TrainConfig`` that follows the data, and the recipes shipped by name.

``erpose train`` starts from one recipe before ``--cfg``, the flags and ``key=value`` overrides:

- ``demo`` for the built-in SynthCrowd presets: ``TrainConfig``'s defaults (the README's main
  command: 128 px, AdamW, no mosaic) at the preset's own image size, fitted to a
  ``DEMO_BUDGET_MINUTES`` time budget;
- ``coco`` for everything else (a data YAML, an annotation JSON): the real-data recipe of
  ``erpose/configs/train/coco.yaml`` (640 px, 300 epochs, nominal batch 64, mosaic).

The YAML recipes live inside the package (``erpose/configs/train/NAME.yaml``), so ``--cfg coco``
and ``--cfg finetune-yolo11`` work after a plain ``pip install`` too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from erpose.config import ConfigError, load_yaml
from erpose.engine.train_config import TrainConfig

#: Folder of the recipes shipped with the package.
RECIPE_DIR = Path(__file__).resolve().parents[1] / "configs" / "train"
#: Time budget of the demo recipe, minutes: the README's "within 10 minutes".
DEMO_BUDGET_MINUTES = 10.0
#: The recipe for data that is not a SynthCrowd preset.
REAL_DATA_RECIPE = "coco"


@dataclass(frozen=True)
class Recipe:
    """A named starting config.

    Attributes:
        name: ``demo``, a shipped recipe name (``coco``, ``finetune-yolo11``) or a file stem.
        origin: where it comes from (``built-in`` or the YAML path), for the line the run prints.
        config: the ``TrainConfig`` it gives, ``data`` already set.
    """

    name: str
    origin: str
    config: TrainConfig

    def describe(self, config: TrainConfig | None = None) -> str:
        """One line: the recipe and the main settings of ``config`` (default: the recipe's own)."""
        c = config or self.config
        length = f"{c.time:g}-min time budget" if c.time > 0 else f"{c.epochs} epochs"
        mosaic = f"mosaic {c.augment.mosaic:g}" if c.augment.mosaic > 0 else "no mosaic"
        return (f"recipe {self.name} ({self.origin}) for {c.data}: {c.imgsz} px, {length}, batch {c.batch}, "
                f"nominal batch {c.optim.nominal_batch}, {mosaic}")


def shipped_recipes() -> list[str]:
    """Names of the recipes inside the package (``coco``, ``finetune-yolo11``...)."""
    return sorted(path.stem for path in RECIPE_DIR.glob("*.yaml"))


def recipe_path(cfg: str | os.PathLike) -> Path:
    """The YAML file ``--cfg`` names: an existing file, or a shipped recipe by name.

    A shipped recipe is found by its name (``coco``) or by its repository path
    (``configs/train/coco.yaml``, what older docs show), so the commands work from any folder.

    Raises:
        ConfigError: neither a file nor a shipped recipe.
    """
    path = Path(cfg)
    if path.is_file():
        return path
    name = path.stem if path.suffix.lower() in (".yaml", ".yml") else path.name
    shipped = RECIPE_DIR / f"{name}.yaml"
    by_name = path.suffix == "" and len(path.parts) == 1
    by_repo_path = path.parent.parts[-2:] == ("configs", "train")
    if shipped.is_file() and (by_name or by_repo_path):
        return shipped
    raise ConfigError(f"{cfg}: config file not found (shipped recipes: {', '.join(shipped_recipes())})")


def load_recipe(cfg: str | os.PathLike) -> Recipe:
    """``--cfg``: a TrainConfig YAML file or a shipped recipe name, as a ``Recipe``."""
    path = recipe_path(cfg)
    origin = f"erpose/configs/train/{path.name}" if path.parent == RECIPE_DIR else str(path)
    return Recipe(path.stem, origin, load_yaml(TrainConfig, path))


def is_synth_preset(data: str) -> bool:
    try:
        from erpose.data.synth import PRESETS
    except ImportError:
        return False
    return data in PRESETS


def recipe_for_data(data: str | None) -> Recipe:
    """The recipe that fits ``data`` (None: the default SynthCrowd demo set); see the module docstring."""
    data = data or TrainConfig.data
    if is_synth_preset(data):
        from erpose.data.synth import get_preset

        config = replace(TrainConfig(), data=data, imgsz=get_preset(data).imgsz, time=DEMO_BUDGET_MINUTES)
        return Recipe("demo", "built-in", config)
    recipe = load_recipe(REAL_DATA_RECIPE)
    # A GPU recipe asks for 8 loading processes; never more than the cores beside the training one.
    workers = min(recipe.config.workers, max((os.cpu_count() or 1) - 1, 0))
    return replace(recipe, config=replace(recipe.config, data=data, workers=workers))


def with_length(config: TrainConfig, *, epochs: int | None = None, minutes: float | None = None) -> TrainConfig:
    """``config`` with an explicit run length: ``epochs`` switches a recipe's time budget off,
    ``minutes`` sets one (its epochs are then fitted to it). Giving both is an error."""
    if epochs is not None and minutes is not None:
        raise ConfigError(f"give a time budget or a number of epochs, not both (time={minutes:g}, epochs={epochs})")
    if minutes is not None:
        return replace(config, time=float(minutes))
    if epochs is not None:
        return replace(config, epochs=int(epochs), time=0.0)
    return config
