"""Find model cards: the built-in ones shipped in this package plus a user folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from faceledger.errors import ModelError
from faceledger.models.card import ModelCard

FLIP_SUFFIX = "-flip"
"""Id suffix of the card whose templates average the chip and its mirror image."""


def builtin_cards_dir() -> Path:
    return Path(str(resources.files("faceledger.models") / "cards"))


class ModelRegistry:
    """Cards by id; a card in ``extra_dir`` overrides a built-in card of the same id."""

    def __init__(self, extra_dir: Path | None = None) -> None:
        self._dirs = [builtin_cards_dir()] + ([extra_dir] if extra_dir else [])

    def ids(self) -> list[str]:
        return sorted(self._paths())

    def _paths(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for d in self._dirs:
            if d.is_dir():
                for p in sorted(d.glob("*.json")):
                    found[p.stem] = p
        return found

    def get(self, model_id: str) -> ModelCard:
        path = self._paths().get(model_id)
        if path is None:
            raise ModelError(f"unknown model {model_id!r}; known: {', '.join(self.ids())}")
        card = ModelCard.load(path)
        if card.id != model_id:
            raise ModelError(f"card {path} declares id {card.id!r}, expected {model_id!r}")
        return card

    def resolve(self, model_id: str, flip_average: bool | None = None) -> ModelCard:
        """The card of ``model_id``, or of its sibling with the recipe ``flip_average`` asks.

        Siblings share their weights and differ in recipe only: ``X`` and ``X-flip``.
        """
        card = self.get(model_id)
        if flip_average is None or card.flip_average == flip_average:
            return card
        base = model_id.removesuffix(FLIP_SUFFIX)
        sibling = base + FLIP_SUFFIX if flip_average else base
        if sibling not in self._paths():
            raise ModelError(
                f"model {model_id!r} has no sibling card {sibling!r} "
                f"{'with' if flip_average else 'without'} flip averaging"
            )
        found = self.get(sibling)
        if found.flip_average != flip_average or found.files != card.files:
            raise ModelError(f"card {sibling!r} is not {model_id!r}'s recipe sibling")
        return found

    def cards(self) -> list[ModelCard]:
        return [self.get(i) for i in self.ids()]
