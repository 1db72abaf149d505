"""The REST service and review UI: ``create_app(settings)`` (FastAPI), run by ``serve``."""

from faceledger.api.app import create_app
from faceledger.api.service import Service, ServiceOptions

__all__ = ["Service", "ServiceOptions", "create_app"]
