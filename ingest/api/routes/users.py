"""Users: operators only. Passwords are write-only (hashed with argon2id)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from ingest.api.deps import FilterId, ItemId, Limit, Offset, OperatorUser, SessionDep
from ingest.api.routes.common import get_or_404, page_of
from ingest.api.schemas import Page, UserCreate, UserPublic, UserUpdate
from ingest.registry.models import Role, User
from ingest.registry.people import create_user, delete_user, list_users, update_user

router = APIRouter(prefix="/users", tags=["users"])


@router.get("")
def read_users(
    _user: OperatorUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    role: Annotated[Role | None, Query()] = None,
    household_id: FilterId = None,
) -> Page[UserPublic]:
    rows = list_users(session, limit=limit, offset=offset, role=role, household_id=household_id)
    return page_of(UserPublic, rows, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
def add_user(user: OperatorUser, session: SessionDep, body: UserCreate) -> UserPublic:
    return UserPublic.model_validate(create_user(session, **body.model_dump(), by=user.username))


@router.get("/{user_id}")
def read_user(_user: OperatorUser, session: SessionDep, user_id: ItemId) -> UserPublic:
    return UserPublic.model_validate(get_or_404(session, User, user_id))


@router.patch("/{user_id}")
def change_user(user: OperatorUser, session: SessionDep, user_id: ItemId, body: UserUpdate) -> UserPublic:
    target = get_or_404(session, User, user_id)
    changes = body.model_dump(exclude_unset=True)
    if target.id == user.id and ("role" in changes or changes.get("is_active") is False):
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot demote or deactivate yourself")
    return UserPublic.model_validate(update_user(session, target, changes=changes, by=user.username))


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_user(user: OperatorUser, session: SessionDep, user_id: ItemId) -> None:
    target = get_or_404(session, User, user_id)
    if target.id == user.id:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot delete yourself")
    delete_user(session, target, by=user.username)
