"""Embedders turn aligned faces into L2-normalised templates."""

from faceledger.embed.base import Embedder, make_embedder

__all__ = ["Embedder", "make_embedder"]
