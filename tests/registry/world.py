"""A small registry for API tests: two buildings with a household and a resident each, staff users,
and fresh targets (rows) on demand. Tokens are issued by the app's signer, as login would."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.security import TokenSigner
from ingest.registry.assignments import create_assignment
from ingest.registry.commissioning import record_check
from ingest.registry.fleet import BrokerAccounts, create_gateway
from ingest.registry.models import Assignment, Building, Device, Gateway, Household, Role, User
from tests.registry import factories as f

ANONYMOUS, RESIDENT_A, RESIDENT_B, TECHNICIAN, OPERATOR = (
    "anonymous",
    "resident_a",
    "resident_b",
    "technician",
    "operator",
)
CALLERS = (ANONYMOUS, RESIDENT_A, RESIDENT_B, TECHNICIAN, OPERATOR)


@dataclass
class World:
    client: TestClient
    session: Session
    broker: BrokerAccounts
    building_a: Building
    building_b: Building
    household_a: Household
    household_b: Household
    users: dict[str, User]

    @classmethod
    def build(cls, client: TestClient, session: Session, broker: BrokerAccounts) -> World:
        household_a, household_b = f.household(session), f.household(session)
        users = {
            RESIDENT_A: f.user(session, Role.resident, household_a.id),
            RESIDENT_B: f.user(session, Role.resident, household_b.id),
            TECHNICIAN: f.user(session, Role.technician),
            OPERATOR: f.user(session, Role.operator),
        }
        return cls(
            client=client,
            session=session,
            broker=broker,
            building_a=household_a.building,
            building_b=household_b.building,
            household_a=household_a,
            household_b=household_b,
            users=users,
        )

    def headers(self, caller: str) -> dict[str, str]:
        if caller == ANONYMOUS:
            return {}
        user = self.users[caller]
        self.session.refresh(user)
        signer: TokenSigner = self.client.app.state.signer  # type: ignore[attr-defined]
        token = signer.issue(user)
        return {"Authorization": f"Bearer {token}"}

    # fresh targets, so that one caller's DELETE does not change what the next one sees

    def building(self) -> Building:
        return f.building(self.session)

    def household(self) -> Household:
        return f.household(self.session, self.building_a.id)

    def user(self) -> User:
        return f.user(self.session, Role.technician)

    def gateway_row(self) -> Gateway:
        return f.gateway_row(self.session, self.building_a.id)

    def gateway(self) -> Gateway:
        """A gateway with a real broker account."""
        gateway, _password = create_gateway(self.session, self.broker, name=f"w{f.tag()}")
        return gateway

    def device(self) -> Device:
        return f.device(self.session)

    def checked_device_run(self) -> tuple[int, str]:
        """A device of household B with a stored commissioning result: (device id, run id)."""
        device = self.device()
        create_assignment(
            self.session, device_id=device.id, household_id=self.household_b.id, valid_from=f.t(0)
        )
        run_id = uuid.uuid4().hex
        now = dt.datetime.now(dt.UTC)
        report = {"passed": True, "outcome": "passed", "reasons": [], "warnings": []}
        record_check(
            self.session,
            device_id=device.id,
            run_id=run_id,
            started_by_id=self.users[TECHNICIAN].id,
            started_by=self.users[TECHNICIAN].username,
            started_at=now,
            finished_at=now,
            report=report,
        )
        return device.id, run_id

    def assignment(self) -> Assignment:
        return create_assignment(
            self.session,
            device_id=self.device().id,
            household_id=self.household_a.id,
            valid_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
        )
