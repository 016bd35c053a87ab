"""The secretproxy service's gRPC servicer: thin (parse, authorise, call the store, encode).

Management RPCs are for operators and for the owners and admins of the organisation (acting users;
their role is asked of identity, fail closed). Members may read the egress policy. Workers use
Forward only; nothing here ever returns a secret's value.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc

from switchboard.services.secretproxy import egress, placeholders, store, vault
from switchboard.services.secretproxy.forwarding import Forwarder
from switchboard.services.secretproxy.organizations import OrganizationResolver
from switchboard.services.secretproxy.upstreams import Upstream
from switchboard.shared.authz import Role, Target, current_access, policy
from switchboard.shared.crypto import KeyRing
from switchboard.shared.errors import NotFound
from switchboard.shared.messages import timestamp
from switchboard.shared.pagination import decode_page_token, page_of
from switchboard.shared.validation import Violations
from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc

Context = grpc.aio.ServicerContext
MAX_VALUE_BYTES = 16 * 1024
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")
_ACTIONS = {pb.EGRESS_ACTION_ALLOW: "allow", pb.EGRESS_ACTION_DENY: "deny"}
_ACTIONS_TO_PROTO = {name: action for action, name in _ACTIONS.items()}


def secret_message(row: store.Record) -> pb.Secret:
    return pb.Secret(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]) if row["organization_id"] else "",
        agent_id=str(row["agent_id"]) if row["agent_id"] else "",
        name=row["name"],
        key_id=row["key_id"],
        created_at=timestamp(row["created_at"]),
        rotated_at=timestamp(row["rotated_at"]),
    )


def credential_message(row: store.Record) -> pb.ProviderCredential:
    return pb.ProviderCredential(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        provider=row["provider"],
        priority=row["priority"],
        key_id=row["key_id"],
        created_at=timestamp(row["created_at"]),
    )


def policy_message(organization_id: str, row: store.Record | None) -> pb.EgressPolicy:
    if row is None:
        return pb.EgressPolicy(organization_id=organization_id, policy_hash=egress.NO_POLICY_HASH)
    rules = [
        pb.EgressRule(
            action=_ACTIONS_TO_PROTO[rule["action"]], host_pattern=rule["host"], methods=rule["methods"], path_prefix=rule["path_prefix"]
        )
        for rule in json.loads(row["rules"])
    ]
    return pb.EgressPolicy(
        organization_id=organization_id, rules=rules, policy_hash=row["policy_hash"], updated_at=timestamp(row["updated_at"])
    )


# Calls on one secret or credential are authorised in its organisation (NOT_FOUND otherwise).
SECRET = Target("secret_id", locate="organization_of_secret", noun="secret")
CREDENTIAL = Target("provider_credential_id", locate="organization_of_credential", noun="provider credential")


def _value(v: Violations, field: str, value: str) -> str:
    """A secret or credential value: it travels in an HTTP header, so only Latin-1 without line
    breaks or NUL. (The message never quotes the value.)"""
    if not value:
        v.add(field, "is required")
    elif len(value.encode()) > MAX_VALUE_BYTES:
        v.add(field, "must be at most 16 KiB")
    elif any(c in value for c in "\r\n\x00") or not all(ord(c) < 256 for c in value):
        v.add(field, "must be usable in an HTTP header: Latin-1 characters only, no CR, LF or NUL")
    return value


class SecretProxyService(secret_proxy_service_pb2_grpc.SecretProxyServiceServicer):
    """switchboard.secretproxy.v1.SecretProxyService."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        keys: KeyRing | None,
        upstreams: dict[str, Upstream],
        organizations: OrganizationResolver,
        forwarder: Forwarder,
    ):
        self._pool = pool
        self._keys = keys
        self._upstreams = upstreams
        self._organizations = organizations
        self._forwarder = forwarder

    def _keyring(self) -> KeyRing:
        return vault.require_keys(self._keys)

    async def organization_of_secret(self, secret_id: str) -> str | None:
        row = await store.secret_get(self._pool, secret_id)
        return str(row["organization_id"]) if row and row["organization_id"] else None

    async def organization_of_credential(self, credential_id: str) -> str | None:
        row = await store.credential_get(self._pool, credential_id)
        return str(row["organization_id"]) if row else None

    # -- secrets -----------------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def PutSecret(self, request: pb.PutSecretRequest, context: Context) -> pb.PutSecretResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        agent_id = v.uuid("agent_id", request.agent_id, required=False) or None
        if not _SECRET_NAME.match(request.name):
            v.add("name", "must be 1 to 128 letters, digits, '_', '-' or '.'")
        value = _value(v, "value", request.value)
        v.check()
        if agent_id is not None and await self._organizations.organization_of_agent(agent_id) != organization_id:
            raise NotFound(f"agent {agent_id} is not an agent of organisation {organization_id}", reason="AGENT_NOT_FOUND")
        secret_id = uuid.uuid4()
        placeholder = placeholders.new_placeholder()
        key_id, sealed = vault.seal(self._keyring(), value, vault.secret_aad(str(secret_id), organization_id))
        await store.secret_insert(
            self._pool,
            secret_id=secret_id,
            organization_id=organization_id,
            agent_id=agent_id,
            name=request.name,
            placeholder_hash=placeholders.placeholder_hash(placeholder),
            key_id=key_id,
            sealed_value=sealed,
        )
        return pb.PutSecretResponse(secret_id=str(secret_id), placeholder=placeholder)

    @policy(user=Role.ADMIN, target=SECRET)
    async def RotateSecret(self, request: pb.RotateSecretRequest, context: Context) -> pb.RotateSecretResponse:
        v = Violations()
        secret_id = v.uuid("secret_id", request.secret_id)
        value = _value(v, "value", request.value)
        v.check()
        current = await store.secret_get(self._pool, secret_id)
        row = None
        if current is not None and current["organization_id"] is not None:
            organization_id = current_access().organization_id or str(current["organization_id"])
            key_id, sealed = vault.seal(self._keyring(), value, vault.secret_aad(secret_id, organization_id))
            row = await store.secret_rotate(self._pool, secret_id, organization_id, key_id, sealed)
        if row is None:
            raise NotFound(f"secret {secret_id} does not exist", reason="SECRET_NOT_FOUND")
        return pb.RotateSecretResponse(secret=secret_message(row))

    @policy(user=Role.ADMIN, target=SECRET)
    async def DeleteSecret(self, request: pb.DeleteSecretRequest, context: Context) -> pb.DeleteSecretResponse:
        v = Violations()
        secret_id = v.uuid("secret_id", request.secret_id)
        v.check()
        current = await store.secret_get(self._pool, secret_id)
        row = None
        if current is not None and current["organization_id"] is not None:
            row = await store.secret_delete(self._pool, secret_id, current_access().organization_id or str(current["organization_id"]))
        if row is None:
            raise NotFound(f"secret {secret_id} does not exist", reason="SECRET_NOT_FOUND")
        return pb.DeleteSecretResponse(secret=secret_message(row))

    @policy(user=Role.ADMIN, target="organization_id")
    async def ListSecrets(self, request: pb.ListSecretsRequest, context: Context) -> pb.ListSecretsResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        agent_id = v.uuid("agent_id", request.agent_id, required=False) or None
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        scope = f"{organization_id}|{agent_id or ''}"
        after = _after(request, scope, (str, uuid.UUID))
        rows = await store.secret_list(self._pool, organization_id, agent_id, after=after, limit=page_size + 1)
        rows, token = page_of(rows, page_size, lambda r: (scope, r["name"], str(r["id"])), request)
        return pb.ListSecretsResponse(secrets=[secret_message(r) for r in rows], next_page_token=token)

    # -- provider credentials ----------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def PutProviderCredential(self, request: pb.PutProviderCredentialRequest, context: Context) -> pb.PutProviderCredentialResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        if request.provider not in self._upstreams:
            v.add("provider", f"must name a configured upstream ({', '.join(sorted(self._upstreams))})")
        value = _value(v, "value", request.value)
        if not -1000 <= request.priority <= 1000:
            v.add("priority", "must be from -1000 to 1000")
        v.check()
        credential_id = uuid.uuid4()
        key_id, sealed = vault.seal(
            self._keyring(), value, vault.credential_aad(str(credential_id), organization_id, request.provider)
        )
        row = await store.credential_insert(
            self._pool,
            credential_id=credential_id,
            organization_id=organization_id,
            provider=request.provider,
            priority=request.priority,
            key_id=key_id,
            sealed_value=sealed,
        )
        return pb.PutProviderCredentialResponse(provider_credential=credential_message(row))

    @policy(user=Role.ADMIN, target="organization_id")
    async def ListProviderCredentials(
        self, request: pb.ListProviderCredentialsRequest, context: Context
    ) -> pb.ListProviderCredentialsResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        provider = v.text("provider", request.provider, max_length=64, required=False) or None
        page_size = v.page_size("page_size", request.page_size)
        v.check()
        scope = f"{organization_id}|{provider or ''}"
        # Priorities run from -1000 to 1000; page tokens hold non-negative integers.
        after = _after(request, scope, (str, int, uuid.UUID))
        position = (after[0], after[1] - 1000, after[2]) if after else None
        rows = await store.credential_list(self._pool, organization_id, provider, after=position, limit=page_size + 1)
        rows, token = page_of(rows, page_size, lambda r: (scope, r["provider"], r["priority"] + 1000, str(r["id"])), request)
        return pb.ListProviderCredentialsResponse(provider_credentials=[credential_message(r) for r in rows], next_page_token=token)

    @policy(user=Role.ADMIN, target=CREDENTIAL)
    async def DeleteProviderCredential(
        self, request: pb.DeleteProviderCredentialRequest, context: Context
    ) -> pb.DeleteProviderCredentialResponse:
        v = Violations()
        credential_id = v.uuid("provider_credential_id", request.provider_credential_id)
        v.check()
        current = await store.credential_get(self._pool, credential_id)
        organization_id = current_access().organization_id or (str(current["organization_id"]) if current else None)
        row = await store.credential_delete(self._pool, credential_id, organization_id) if current and organization_id else None
        if row is None:
            raise NotFound(f"provider credential {credential_id} does not exist", reason="CREDENTIAL_NOT_FOUND")
        return pb.DeleteProviderCredentialResponse(provider_credential=credential_message(row))

    # -- egress policy -----------------------------------------------------------------------------

    @policy(user=Role.ADMIN, target="organization_id")
    async def SetEgressPolicy(self, request: pb.SetEgressPolicyRequest, context: Context) -> pb.SetEgressPolicyResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        if len(request.rules) > egress.MAX_RULES:
            v.add("rules", f"at most {egress.MAX_RULES} rules")
        rules = [
            egress.validate_rule(v, i, _ACTIONS.get(rule.action), rule.host_pattern, list(rule.methods), rule.path_prefix)
            for i, rule in enumerate(request.rules[: egress.MAX_RULES])
        ]
        v.check()
        rules = egress.canonical(rules)
        row = await store.policy_set(self._pool, organization_id, rules, egress.policy_hash(rules))
        return pb.SetEgressPolicyResponse(policy=policy_message(organization_id, row))

    @policy(user=Role.MEMBER, target="organization_id")
    async def GetEgressPolicy(self, request: pb.GetEgressPolicyRequest, context: Context) -> pb.GetEgressPolicyResponse:
        v = Violations()
        organization_id = v.uuid("organization_id", request.organization_id)
        v.check()
        return pb.GetEgressPolicyResponse(policy=policy_message(organization_id, await store.policy_get(self._pool, organization_id)))

    # -- forwarding --------------------------------------------------------------------------------

    @policy(operator=False, worker="organization")
    def Forward(self, request_iterator: AsyncIterator[pb.ForwardRequest], context: Context) -> AsyncIterator[pb.ForwardResponse]:
        return self._forwarder.forward(request_iterator, context)


def _after(request: pb.ListSecretsRequest | pb.ListProviderCredentialsRequest, scope: str, kinds: tuple[type, ...]) -> list | None:
    """The position in a page token, which must come from a call with the same filters."""
    position = decode_page_token(request, (str, *kinds))
    if position is None:
        return None
    if position[0] != scope:
        v = Violations()
        v.add("page_token", "was returned for other organization_id or filter values")
        v.check()
    return position[1:]
