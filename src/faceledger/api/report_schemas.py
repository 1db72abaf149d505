"""Response bodies of the organisation lead-rate report (``GET /audit/report/orgs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RateOut(_Model):
    k: int
    n: int
    value: float | None = Field(description="k / n; null when there was no search.")
    ci95: list[float] = Field(description="Wilson 95 % interval [low, high].")


class FiguresOut(_Model):
    searches: int
    faces: int = Field(description="Faces searched (one per search when not recorded).")
    searches_with_leads: int
    leads: int
    outcomes: dict[str, int] = Field(description="Leads per review status.")
    lead_rate: RateOut
    confirmed_lead_rate: RateOut = Field(
        description="Searches with at least one confirmed lead, over searches."
    )
    median_hours_to_first_decision: float | None


class WeekOut(_Model):
    week: str = Field(description="Monday of the week (UTC), ISO date.")
    searches: int
    searches_with_leads: int
    searches_with_confirmed: int


class OrgReportOut(_Model):
    org: str | None
    agreement_id: str | None
    from_: str = Field(alias="from")
    to: str
    total: FiguresOut
    as_owner: FiguresOut | None = Field(
        description="Other organisations' searches of its galleries."
    )
    as_requester: FiguresOut | None = Field(description="Its own searches.")
    by_requester: dict[str, FiguresOut]
    by_agreement: dict[str, FiguresOut] = Field(
        description='By agreement id; "none" for galleries searched under no agreement.'
    )
    weekly: list[WeekOut]

    @classmethod
    def of(cls, data: dict[str, Any]) -> OrgReportOut:
        return cls.model_validate(data)
