"""Find model cards: the built-in ones shipped in this package plus a user folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from faceledger.errors import ModelError
from faceledger.models.card import ModelCard


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

    def cards(self) -> list[ModelCard]:
        return [self.get(i) for i in self.ids()]
