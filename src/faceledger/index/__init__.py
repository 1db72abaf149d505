"""Vector indexes: one gallery's templates of one model, searched by cosine similarity.

``ExactIndex`` is the oracle; faiss flat/HNSW/IVF, ScaNN (optional) and Milvus pass the same
contract suite and return the same ranked candidates after exact re-ranking.
``choose_index``/``rebuild`` pick and build the right kind as a gallery grows.
"""

from faceledger.index.base import RerankSource, SearchHits, VectorIndex
from faceledger.index.exact import ExactIndex
from faceledger.index.factory import (
    KINDS,
    IndexChoice,
    choose_index,
    from_description,
    load_index,
    make_index,
    needs_rebuild,
    rebuild,
    retune,
)
from faceledger.index.faiss_hnsw import FaissHNSWIndex
from faceledger.index.faiss_index import FaissFlatIndex
from faceledger.index.faiss_ivf import FaissIVFIndex

__all__ = [
    "KINDS",
    "ExactIndex",
    "FaissFlatIndex",
    "FaissHNSWIndex",
    "FaissIVFIndex",
    "IndexChoice",
    "RerankSource",
    "SearchHits",
    "VectorIndex",
    "choose_index",
    "from_description",
    "load_index",
    "make_index",
    "needs_rebuild",
    "rebuild",
    "retune",
]
