"""The Engine: image → detect → quality → align → embed, and 1:1 verification.

Stateless apart from lazily loaded models; holds no gallery. Safe to build one per worker
process; share nothing between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from faceledger.align import align_face
from faceledger.config import FaceSelection, Settings
from faceledger.detect import Detector, make_detector, select_face
from faceledger.embed import Embedder
from faceledger.embed.runtime import RuntimeChoice, runtime_embedder
from faceledger.errors import InvalidArgument, QualityRejected
from faceledger.io import ImageLimits, decode_image, load_image
from faceledger.match import decide
from faceledger.models import ModelCard, ModelRegistry
from faceledger.quality import assess_quality
from faceledger.types import (
    AlignedFace,
    Decision,
    DecodedImage,
    Detection,
    FaceResult,
    QualityReport,
    Template,
)

ImageInput = DecodedImage | bytes | str | Path


@dataclass(frozen=True)
class VerifyResult:
    decision: Decision
    a: FaceResult
    b: FaceResult


@dataclass(frozen=True)
class PreparedFace:
    """One selected face made ready for the embedder: its aligned chip and quality report.

    Kept apart from the template so a caller (the bulk path) can hold many of these and run
    the embedder once over all their chips, while sharing exactly the steps of
    :meth:`Engine.embed`.
    """

    face: AlignedFace
    quality: QualityReport
    face_index: int = 0
    """The chosen face's position among the image's detections."""
    faces_in_image: int = 1
    selection: str | None = None

    @property
    def detection(self) -> Detection:
        """The chosen detection (the one the chip was aligned from)."""
        return self.face.detection

    def result(self, template: Template) -> FaceResult:
        """This face's :class:`FaceResult` once ``template`` has been computed from its chip."""
        return FaceResult(
            self.detection,
            self.quality,
            template,
            face_index=self.face_index,
            faces_in_image=self.faces_in_image,
            selection=self.selection,
        )


class Engine:
    """Detect, assess, align and embed faces with one model; verify pairs."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        card: ModelCard | None = None,
        detector: Detector | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._card = card
        self._detector = detector
        self._embedder = embedder
        self._runtime: RuntimeChoice | None = None
        self._siblings: dict[str, Engine] = {}

    # -- lazily built parts -------------------------------------------------------------
    @property
    def card(self) -> ModelCard:
        if self._card is None:
            self._card = ModelRegistry(self.settings.model_dir).resolve(
                self.settings.model_id, self.settings.flip_average
            )
        return self._card

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = make_detector(self.settings)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder, self._runtime = runtime_embedder(self.card, self.settings)
        return self._embedder

    @property
    def runtime(self) -> RuntimeChoice | None:
        """Which runtime serves the model (builds the embedder; None when one was given)."""
        _ = self.embedder
        return self._runtime

    def for_model(self, model_id: str) -> Engine:
        """The engine making ``model_id``'s templates, sharing this one's detector.

        A gallery keeps the model (and template recipe) it was created with: its probes and
        new members are embedded by its model even after the default changes.
        """
        if model_id == self.card.id:
            return self
        found = self._siblings.get(model_id)
        if found is None:
            settings = replace(self.settings, model_id=model_id, flip_average=None)
            found = self._siblings[model_id] = self._sibling(settings)
        return found

    def _sibling(self, settings: Settings) -> Engine:
        return Engine(settings, detector=self.detector)

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(self.settings.max_image_bytes, self.settings.max_image_pixels)

    # -- stages -------------------------------------------------------------------------
    def load(self, image: ImageInput) -> DecodedImage:
        if isinstance(image, DecodedImage):
            return image
        if isinstance(image, bytes | bytearray):
            return decode_image(bytes(image), self.limits)
        if isinstance(image, str | Path):
            return load_image(image, self.limits)
        raise InvalidArgument(f"unsupported image input of type {type(image).__name__}")

    def detect(self, image: ImageInput) -> list[FaceResult]:
        """Every face with its quality report (no templates), largest first."""
        img = self.load(image)
        found = self.detector.detect(img.pixels)
        return [
            FaceResult(
                d,
                assess_quality(img.pixels, d, self.settings.gates),
                face_index=i,
                faces_in_image=len(found),
            )
            for i, d in enumerate(found)
        ]

    def embed_detections(
        self, img: DecodedImage, detections: Sequence[Detection]
    ) -> list[FaceResult]:
        """Quality, alignment and templates for given detections, in one batch."""
        spec = self.card.align
        faces = [align_face(img.pixels, d, spec) for d in detections]
        templates = self.embedder.embed(faces)
        return [
            FaceResult(
                d,
                assess_quality(img.pixels, d, self.settings.gates),
                t,
                face_index=i,
                faces_in_image=len(detections),
            )
            for i, (d, t) in enumerate(zip(detections, templates, strict=True))
        ]

    def embed_faces(self, faces: Sequence[AlignedFace]) -> list[Template]:
        """Templates of aligned chips, in one batch (video tracks' best faces)."""
        return self.embedder.embed(faces)

    def embed_all(self, image: ImageInput) -> list[FaceResult]:
        img = self.load(image)
        return self.embed_detections(img, self.detector.detect(img.pixels))

    def embed(
        self,
        image: ImageInput,
        *,
        selection: FaceSelection | None = None,
        enrolment: bool = False,
    ) -> FaceResult:
        """The selected face's template. Enrolment refuses faces failing the quality gates;
        probes are never refused, only flagged in their quality report."""
        img = self.load(image)
        return self.embed_detected(
            img, self.detector.detect(img.pixels), selection=selection, enrolment=enrolment
        )

    def embed_detected(
        self,
        img: DecodedImage,
        detections: Sequence[Detection],
        *,
        selection: FaceSelection | None = None,
        enrolment: bool = False,
    ) -> FaceResult:
        """Select one of ``detections``, apply the enrolment gates, embed it."""
        prepared = self.prepare(img, detections, selection=selection, enrolment=enrolment)
        (template,) = self.embedder.embed([prepared.face])
        return prepared.result(template)

    def prepare(
        self,
        img: DecodedImage,
        detections: Sequence[Detection],
        *,
        selection: FaceSelection | None = None,
        enrolment: bool = False,
    ) -> PreparedFace:
        """Select one of ``detections``, assess it, apply the enrolment gates and align it.

        Everything :meth:`embed_detected` does before the embedder, in one place so the
        single-image and bulk paths cannot drift apart. Raises ``NoFace``/``AmbiguousFace``
        from selection and :class:`QualityRejected` for an enrolment face failing the gates;
        probes are never refused, only flagged in their quality report.
        """
        policy = selection or self.settings.face_selection
        chosen = select_face(detections, policy, img.width, img.height)
        quality = assess_quality(img.pixels, chosen, self.settings.gates)
        if enrolment and not quality.passes:
            raise QualityRejected(
                f"face quality {quality.score:.0f}/100 fails the enrolment gates: "
                + ", ".join(quality.flags),
                reasons=quality.flags,
            )
        return PreparedFace(
            align_face(img.pixels, chosen, self.card.align),
            quality,
            face_index=next(i for i, d in enumerate(detections) if d is chosen),
            faces_in_image=len(detections),
            selection=policy,
        )

    def verify(
        self,
        a: ImageInput,
        b: ImageInput,
        *,
        fmr: float | None = None,
        selection: FaceSelection | None = None,
    ) -> VerifyResult:
        """Compare the selected faces of two images at a target false-match rate."""
        fa = self.embed(a, selection=selection)
        fb = self.embed(b, selection=selection)
        assert fa.template is not None and fb.template is not None
        target = fmr if fmr is not None else self.settings.default_fmr
        decision = decide(fa.template, fb.template, self.card, target)
        return VerifyResult(decision, fa, fb)
