"""ICAO 9303's specimen document holder (Anna Maria Eriksson of Utopia), as its TD3 passport
prints her, shared by the MRZ, OCR, use case and API tests. Vary it with
``dataclasses.replace`` (a later expiry, no personal number, another document type)."""

from __future__ import annotations

from faceledger.document.mrz import MrzFields

SPECIMEN = MrzFields(
    document_type="P",
    issuing_state="UTO",
    document_number="L898902C3",
    nationality="UTO",
    birth_date="740812",
    sex="F",
    expiry_date="120415",
    surname="ERIKSSON",
    given_names="ANNA MARIA",
    personal_number="ZE184226B",
)
