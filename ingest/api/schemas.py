"""Request and response bodies, layered per resource: ``Base`` (shared fields), ``Create`` (POST body),
``Update`` (PATCH body: every field optional, ``null`` only where the column allows it), ``Public``
(what is returned). Bodies refuse unknown keys; times need a zone. Free text follows the registry's one
rule (:mod:`ingest.registry.text`, shared with the CSV import): no control characters, no lone
surrogates, no leading ``= + - @`` (a formula once exported); surrounding whitespace is trimmed.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ingest.registry.fleet import GATEWAY_NAME
from ingest.registry.models import DeviceStatus, GatewayStatus, Role
from ingest.registry.text import Key, Name, NativeId, Notes, ShortText, single_line

T = TypeVar("T")
MAX_ID = 2**31 - 1


def _password(value: str) -> str:
    if any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("NUL and lone surrogates are not allowed")
    return value


# pydantic's ``pattern`` is a Rust regex: its ``$`` matches only at the very end (a test holds it to that)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
GatewayName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=GATEWAY_NAME.pattern), BeforeValidator(single_line)
]
Password = Annotated[str, Field(min_length=10, max_length=200), AfterValidator(_password)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="rows matching the filters, over all pages")
    limit: int
    offset: int


class Update(Body):
    """A PATCH body: a field left out stays; ``null`` is accepted only for the fields in ``nullable``."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _null_only_where_allowed(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("may be left out, but not null")
        return value


class BuildingCreate(Body):
    name: Name
    address: ShortText = ""
    notes: Notes = ""


class BuildingUpdate(Update):
    name: Name | None = None
    address: ShortText | None = None
    notes: Notes | None = None


class BuildingPublic(Public):
    id: int
    name: str
    address: str
    notes: str
    created_at: dt.datetime


class HouseholdCreate(Body):
    building_id: Id
    name: Name = Field(description="the housing unit's label, unique in its building, e.g. 'WE 03'")
    notes: Notes = ""


class HouseholdUpdate(Update):
    building_id: Id | None = None
    name: Name | None = None
    notes: Notes | None = None


class HouseholdPublic(Public):
    id: int
    building_id: int
    name: str
    notes: str
    created_at: dt.datetime


class UserCreate(Body):
    username: Key
    password: Password
    role: Role
    household_id: Id | None = Field(None, description="required for residents, refused for others")
    full_name: ShortText = ""

    @model_validator(mode="after")
    def _resident_household(self) -> UserCreate:
        if (self.role is Role.resident) != (self.household_id is not None):
            raise ValueError("a resident needs a household_id; other roles must not have one")
        return self


class UserUpdate(Update):
    nullable = frozenset({"household_id"})

    password: Password | None = None
    role: Role | None = None
    household_id: Id | None = None
    full_name: ShortText | None = None
    is_active: bool | None = None


class UserPublic(Public):
    id: int
    username: str
    full_name: str
    role: Role
    household_id: int | None
    is_active: bool
    created_at: dt.datetime


class LoginRequest(Body):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=200)]


class LoginResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds")
    user: UserPublic


class GatewayCreate(Body):
    name: GatewayName = Field(description="the gateway's topic level: it publishes under lab/<name>/#")
    building_id: Id | None = None
    notes: Notes = ""


class GatewayUpdate(Update):
    nullable = frozenset({"building_id"})

    building_id: Id | None = None
    notes: Notes | None = None


class GatewayPublic(Public):
    id: int
    name: str
    building_id: int | None
    status: GatewayStatus
    broker_username: str
    credentials_issued_at: dt.datetime | None
    last_seen: dt.datetime | None
    notes: str
    created_at: dt.datetime


class GatewayCredentials(BaseModel):
    """Shown once: the password is not stored anywhere but in the broker (hashed)."""

    gateway: GatewayPublic
    username: str
    password: str
    client_id: str = Field(description="the only MQTT client id the broker accepts for this account")
    topic_prefix: str


class DeviceBase(Body):
    native_id: NativeId = Field(description="the device id as it appears in the topic")
    profile_id: Key
    meter_number: Key | None = None
    location: ShortText = Field("", description="room or place, e.g. 'Keller, Zählerschrank 2'")
    notes: Notes = ""


class DeviceCreate(DeviceBase):
    gateway_id: Id
    household_id: Id | None = Field(None, description="assign right away to this household ...")
    building_id: Id | None = Field(None, description="... or to this building's common area")
    assigned_from: AwareDatetime | None = Field(None, description="start of that assignment (default: now)")


class DeviceUpdate(Update):
    nullable = frozenset({"meter_number"})

    gateway_id: Id | None = None
    native_id: NativeId | None = None
    profile_id: Key | None = None
    meter_number: Key | None = None
    location: ShortText | None = None
    notes: Notes | None = None
    status: DeviceStatus | None = None


class DevicePublic(Public):
    id: int
    gateway_id: int
    native_id: str
    profile_id: str
    meter_number: str | None
    location: str
    notes: str
    status: DeviceStatus
    last_seen: dt.datetime | None
    commissioned_at: dt.datetime | None
    commissioning_passed: bool | None
    created_at: dt.datetime


class AssignmentCreate(Body):
    device_id: Id
    household_id: Id | None = None
    building_id: Id | None = Field(None, description="needed only without a household (common area)")
    valid_from: AwareDatetime
    valid_to: AwareDatetime | None = Field(None, description="exclusive; null: open-ended")
    note: ShortText = ""


class AssignmentUpdate(Update):
    nullable = frozenset({"valid_to"})

    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    note: ShortText | None = None


class AssignmentPublic(Public):
    id: int
    device_id: int
    household_id: int | None
    building_id: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    note: str
    created_at: dt.datetime


class MeterSwap(Body):
    old_device_id: Id
    new_device_id: Id
    at: AwareDatetime = Field(description="the moment the new meter takes over")
    note: ShortText = ""


class ResidentDevice(Public):
    id: int
    profile_id: str
    meter_number: str | None
    location: str


class MyHousehold(BaseModel):
    """A resident's own household: the only one they can ever read."""

    id: int
    name: str
    building: BuildingPublic
    devices: list[ResidentDevice]
