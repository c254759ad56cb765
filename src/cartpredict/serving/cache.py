"""In-process cache of what serving needs per retailer: its config, its model, its keys (each
as the principal it makes, with its scopes and expiry).

Invalidation bumps a per-retailer generation (and a cache-wide epoch, for key lookups that do
not yet know their retailer), so a load that raced with a change is not stored over it. Any
change to a retailer's keys invalidates the retailer, here and, through ``sync.py``, in every
worker: a revoked or rotated key leaves every cache with the rest of its retailer's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cartpredict.decisions.policy import RecoveryPolicy
from cartpredict.models import ServedModel
from cartpredict.models.recovery import RecoveryModel
from cartpredict.serving.policies import policy_of, salt_of
from cartpredict.serving.principal import Principal
from cartpredict.storage import Retailer


@dataclass(frozen=True, slots=True)
class Tenant:
    """A retailer as served: its configuration, its model, its recovery policy in force (parsed
    once per load), the recovery models learnt for its actions, and the secret that assigns
    its carts to groups."""

    retailer: Retailer
    model: ServedModel
    budget: tuple[int, float] | None = None  # (policy version, cut-off), see monitoring.budget
    learnt: Mapping[str, RecoveryModel] = field(default_factory=dict)  # by action, as stored
    policy: RecoveryPolicy = field(init=False)
    salt: bytes = field(init=False)
    recovery: Mapping[str, RecoveryModel] = field(init=False)  # those the policy's actions use

    def __post_init__(self) -> None:
        policy = policy_of(self.retailer)
        object.__setattr__(self, "policy", policy)
        object.__setattr__(self, "salt", salt_of(self.retailer))
        usable = {
            a.name: m
            for a in policy.actions
            if (m := self.learnt.get(a.name)) is not None
            and m.serves(a.name, a.channel, a.discount)
        }
        object.__setattr__(self, "recovery", usable)

    @property
    def cutoff(self) -> float | None:
        """The budget's cut-off, if one was computed under the policy in force."""
        budget = self.budget
        if budget is None or budget[0] != self.retailer.policy_version:
            return None
        return budget[1]


class TenantCache:
    def __init__(self) -> None:
        self._tenants: dict[str, Tenant] = {}
        self._keys: dict[str, Principal] = {}  # by key hash
        self._keys_of: dict[str, set[str]] = {}
        self._generation: dict[str, int] = {}
        self._epoch = 0  # bumped by every invalidation; guards key loads
        self.hits = {"tenant": 0, "key": 0}  # lookups answered here (read by the metrics)
        self.misses = {"tenant": 0, "key": 0}

    @property
    def epoch(self) -> int:
        return self._epoch

    def generation(self, retailer_id: str) -> int:
        return self._generation.get(retailer_id, 0)

    def tenant(self, retailer_id: str) -> Tenant | None:
        found = self._tenants.get(retailer_id)
        if found is None:
            self.misses["tenant"] += 1
        else:
            self.hits["tenant"] += 1
        return found

    def tenants(self) -> list[Tenant]:
        return list(self._tenants.values())

    def served(self) -> list[tuple[str, str]]:
        """(kind, version) of the model serving each retailer loaded (read by the metrics)."""
        return [(t.model.kind, t.model.version) for t in self._tenants.values()]

    def put_tenant(self, tenant: Tenant, *, generation: int) -> None:
        rid = tenant.retailer.retailer_id
        if self.generation(rid) == generation:
            self._tenants[rid] = tenant

    def principal_for_key(self, key_hash: str) -> Principal | None:
        found = self._keys.get(key_hash)
        if found is None:
            self.misses["key"] += 1
        else:
            self.hits["key"] += 1
        return found

    def put_key(self, key_hash: str, principal: Principal, *, epoch: int) -> None:
        """Store a key looked up when the cache was at ``epoch``, unless anything changed since."""
        if self._epoch == epoch and principal.retailer_id is not None:
            self._keys[key_hash] = principal
            self._keys_of.setdefault(principal.retailer_id, set()).add(key_hash)

    def invalidate(self, retailer_id: str) -> None:
        self._epoch += 1
        self._generation[retailer_id] = self.generation(retailer_id) + 1
        self._tenants.pop(retailer_id, None)
        for key_hash in self._keys_of.pop(retailer_id, ()):
            self._keys.pop(key_hash, None)

    def clear(self) -> None:
        for retailer_id in list(self._tenants) + list(self._keys_of):
            self.invalidate(retailer_id)

    def __len__(self) -> int:
        return len(self._tenants)
