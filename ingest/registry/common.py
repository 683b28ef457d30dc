"""Helpers shared by the registry's CRUD modules: pagination, partial updates, references."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ingest.registry.db import commit
from ingest.registry.errors import InvalidField
from ingest.registry.models import Base

T = TypeVar("T")
M = TypeVar("M", bound=Base)

MAX_LIMIT = 500


def paginate(session: Session, statement: Select[T], *, limit: int, offset: int) -> tuple[list[T], int]:
    """One page of ``statement`` and the total number of rows it matches."""
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    items = list(session.scalars(statement.limit(min(limit, MAX_LIMIT)).offset(offset)).unique())
    return items, total


def reference(session: Session, model: type[M], key: int | None, *, field: str) -> M:
    """The row ``key`` of ``model`` named by ``field``, or :class:`InvalidField`."""
    row = session.get(model, key) if key is not None else None
    if row is None:
        raise InvalidField(field, f"no {model.__tablename__.rstrip('s')} with id {key}")
    return row


def apply_changes(row: Base, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        setattr(row, name, value)


def delete_row(session: Session, row: Base) -> None:
    session.delete(row)
    commit(session)
