"""Helpers for routes: 404 for a missing row, a page of public models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from fastapi import HTTPException, status
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ingest.api.schemas import Page
from ingest.registry.models import Base

M = TypeVar("M", bound=Base)
P = TypeVar("P", bound=BaseModel)


def get_or_404(session: Session, model: type[M], key: int) -> M:
    row = session.get(model, key)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{model.__tablename__.rstrip('s')} {key} not found")
    return row


def page_of(public: type[P], rows: tuple[Sequence[Base], int], *, limit: int, offset: int) -> Page[P]:
    items, total = rows
    return Page[public](  # type: ignore[valid-type]
        items=[public.model_validate(row) for row in items], total=total, limit=limit, offset=offset
    )
