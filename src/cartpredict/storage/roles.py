"""PostgreSQL roles: the service logs in with least privilege.

The schema belongs to whoever runs ``cartpredict db upgrade`` (an administrator). The service
itself logs in as a role made here: it can log in and is a member of ``cartpredict_service``
(see migration 0007), so it may read and write rows and switch to ``cartpredict_tenant``, and
nothing else: not a superuser, no BYPASSRLS, no CREATEROLE or CREATEDB, owner of nothing, so
row-level security applies to every query it runs and no ``SET ROLE``/``RESET ROLE`` leads to a
privileged role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, literal, text

from cartpredict.storage.engine import make_engine

SERVICE_GROUP = "cartpredict_service"  # see migration 0007
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ATTRIBUTES = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT"


@dataclass(frozen=True, slots=True)
class RoleAttributes:
    name: str
    superuser: bool
    bypass_rls: bool
    owns_tables: bool

    def problems(self) -> list[str]:
        """Why row-level security would not hold for this role (empty when it does)."""
        found = []
        if self.superuser:
            found.append("is a superuser")
        if self.bypass_rls:
            found.append("has BYPASSRLS")
        if self.owns_tables:
            found.append("owns the tables")
        return [f"the database role {self.name!r} {p}" for p in found]


def create_service_login(admin_url: str, name: str, password: str | None = None) -> None:
    """Create (or bring back to least privilege) the service's login role, as an administrator
    of a database whose schema is up to date. Safe to run again."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"role name {name!r}: use lower-case letters, digits and _ (at most 63)")
    engine = make_engine(admin_url)
    try:
        with engine.begin() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}
            ).first()
            verb = "ALTER" if exists else "CREATE"
            secret = f" PASSWORD {_literal(conn, password)}" if password is not None else ""
            conn.exec_driver_sql(f'{verb} ROLE "{name}" {_ATTRIBUTES}{secret}')
            conn.exec_driver_sql(f'GRANT {SERVICE_GROUP} TO "{name}"')
    finally:
        engine.dispose()


def attributes(conn: Connection) -> RoleAttributes:
    """What the connection's login role may do, as far as row-level security is concerned."""
    row = conn.execute(
        text(
            "SELECT r.rolname, r.rolsuper, r.rolbypassrls, EXISTS (SELECT 1 FROM pg_tables t "
            "WHERE t.tableowner = r.rolname AND t.tablename = 'retailers') "
            "FROM pg_roles r WHERE r.rolname = session_user"
        )
    ).one()
    return RoleAttributes(name=row[0], superuser=row[1], bypass_rls=row[2], owns_tables=row[3])


def _literal(conn: Connection, value: str) -> str:
    """A string literal for a statement that takes no parameters (CREATE ROLE ... PASSWORD)."""
    compiled = literal(value).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)
