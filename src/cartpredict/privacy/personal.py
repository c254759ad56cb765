"""Personal data is not accepted: a retailer's custom attributes may not be named for it.

The API's schemas refuse unknown fields outright, so the attributes a retailer declares are the
only place personal data could be asked for; a name that invites it is refused.
"""

from __future__ import annotations

PERSONAL_NAMES = frozenset(
    [
        "email",
        "name",
        "first_name",
        "last_name",
        "phone",
        "address",
        "user_id",
        "customer_id",
        "ip",
        "ip_address",
        "birthday",
        "date_of_birth",
        "postcode",
        "zip",
    ]
)


def not_personal(name: str) -> str:
    """``name`` itself, unless it looks like personal data (a ValueError says so)."""
    if name in PERSONAL_NAMES:
        raise ValueError(f"'{name}' looks like personal data, which is not accepted")
    return name
