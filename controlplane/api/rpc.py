"""JSON-RPC 2.0 dispatcher: parse, batch, authenticate, authorise, validate, call, serialise.

Methods register themselves with `@method(...)`; each is `fn(ctx, params) -> result` where params
is a validated pydantic model. The registry also yields the OpenRPC document (`rpc.discover`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError

from controlplane.db.models import Role
from controlplane.db.session import database_away

from .permissions import Perm, perms_of

from .errors import (
    ApiError,
    Conflict,
    DatabaseReadOnly,
    DatabaseUnavailable,
    Forbidden,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    Unauthorized,
)

log = logging.getLogger("callmanager.api")


def database_error(exc: DBAPIError) -> ApiError | None:
    """The API's error for a database failure that is not a bug: unreachable (connection refused, lost, no server),
    or read-only (a standby that is not promoted yet). None: anything else."""
    away = database_away(exc)
    if away == "read_only":
        return DatabaseReadOnly()
    if away == "unavailable":
        return DatabaseUnavailable()
    return None


MAX_BATCH = 1000  # requests in one batch (docs/api.md)


class Params(BaseModel):
    """Base of every method's params: unknown fields are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", strict=False)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class Principal:
    token_id: int | None
    role: Role
    tenant_id: int | None  # None: a platform-wide token (all tenants)
    user_id: int | None = None
    user_role: Role | None = None  # the role of the user the token is bound to: the token never exceeds it

    @property
    def is_platform(self) -> bool:
        """A token that reaches every tenant (not necessarily the platform operator: see `can(Perm.PLATFORM)`)."""
        return self.tenant_id is None

    @property
    def perms(self) -> frozenset[Perm]:
        return perms_of(self.role, self.user_role)

    def can(self, perm: Perm) -> bool:
        return perm in self.perms

    def require(self, perm: Perm) -> None:
        if not self.can(perm):
            raise Forbidden(
                f"this needs the permission {perm.value}, which a {self.role.value} token does not have",
                required=perm.value,
            )

    def require_self_or(self, perm: Perm, user_id: int) -> None:
        """A user may manage their own things; someone else's needs `perm`."""
        if self.user_id == user_id and self.user_id is not None:
            return
        if not self.can(perm):
            raise Forbidden(
                f"only the user themselves or a token with the permission {perm.value} may do this", required=perm.value
            )

    def require_platform(self) -> None:
        if not self.can(Perm.PLATFORM):
            raise Forbidden("only the platform operator may do this", required=Perm.PLATFORM.value)

    def tenant_scope(self, tenant_id: int | None) -> int | None:
        """The tenant a call works on: a tenant token is pinned to its own tenant."""
        if self.is_platform:
            return tenant_id
        if tenant_id is not None and tenant_id != self.tenant_id:
            raise Forbidden("a token can only reach its own tenant", tenant_id=tenant_id)
        return self.tenant_id


@dataclass
class Context:
    principal: Principal
    app: Any  # controlplane.app.App


@dataclass
class MethodSpec:
    name: str
    fn: Callable[[Context, Any], Any]
    params: type[Params]
    perm: Perm | None  # None: any token
    summary: str
    public: bool = False
    errors: tuple[str, ...] = ()
    others: Perm | None = None  # a `self` method used on someone else's things needs this too (checked by the method)


@dataclass
class Registry:
    methods: dict[str, MethodSpec] = field(default_factory=dict)

    def method(
        self,
        name: str,
        params: type[Params] = NoParams,
        *,
        perm: Perm | None = Perm.CONFIG,
        summary: str = "",
        public: bool = False,
        errors: tuple[str, ...] = (),
        others: Perm | None = None,
    ):
        def deco(fn):
            if name in self.methods:
                raise ValueError(f"method {name} registered twice")
            self.methods[name] = MethodSpec(
                name, fn, params, perm, summary or (fn.__doc__ or "").strip().split("\n")[0], public, errors, others
            )
            return fn

        return deco


REGISTRY = Registry()
method = REGISTRY.method


def _error_response(req_id: Any, err: ApiError) -> dict:
    return {"jsonrpc": "2.0", "error": err.to_error(), "id": req_id}


def _validation_details(exc: ValidationError) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(params)", "problem": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False)
    ]


class Dispatcher:
    def __init__(
        self, app, authenticate: Callable[[str | None], Principal | None], registry: Registry = REGISTRY, metrics=None
    ):
        self.app = app
        self.authenticate = authenticate
        self.registry = registry
        self.metrics = metrics

    def handle_body(self, body: bytes, token: str | None) -> dict | list | None:
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error_response(None, ParseError())
        except RecursionError:
            return _error_response(None, ParseError("the JSON is nested too deeply"))
        if isinstance(payload, list):
            if not payload:
                return _error_response(None, InvalidRequest("empty batch"))
            if len(payload) > MAX_BATCH:
                return _error_response(
                    None, InvalidRequest(f"a batch holds at most {MAX_BATCH} requests", limit=MAX_BATCH)
                )
            responses = [r for r in (self.handle_one(p, token) for p in payload) if r is not None]
            return responses or None
        return self.handle_one(payload, token)

    def handle_one(self, req: Any, token: str | None) -> dict | None:
        if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str):
            rid = req.get("id") if isinstance(req, dict) else None
            return _error_response(
                rid if isinstance(rid, (str, int)) else None,
                InvalidRequest("a request needs jsonrpc '2.0' and a string method"),
            )
        is_notification = "id" not in req
        req_id = req.get("id")
        if not is_notification and not (req_id is None or isinstance(req_id, (str, int))):
            return _error_response(None, InvalidRequest("id must be a string, a number or null"))
        started = time.monotonic()
        name = req["method"]
        outcome = "ok"
        try:
            result = self.call(name, req.get("params"), token)
            response = {"jsonrpc": "2.0", "result": result, "id": req_id}
        except ApiError as err:
            outcome = err.error_id
            response = _error_response(req_id, err)
        except DBAPIError as exc:  # the database away or read-only (a failover): a clear error, nothing changed
            db_err = database_error(exc)
            if db_err is None:
                log.exception("method %s failed", name)
                db_err = InternalError()
            else:
                log.warning("method %s: %s (%s)", name, db_err.error_id, str(exc.orig).strip()[:200])
            outcome = db_err.error_id
            response = _error_response(req_id, db_err)
        except Exception:  # noqa: BLE001 - never leak a traceback to a client
            log.exception("method %s failed", name)
            outcome = "internal_error"
            response = _error_response(req_id, InternalError())
        if self.metrics is not None:
            self.metrics.observe_api(
                name if name in self.registry.methods else "(unknown)", outcome, time.monotonic() - started
            )
        return None if is_notification else response

    def call(self, name: str, raw_params: Any, token: str | None) -> Any:
        spec = self.registry.methods.get(name)
        if spec is None:
            raise MethodNotFound(f"no method named {name!r}", method=name)
        principal = None
        if not spec.public:
            principal = self.authenticate(token)
            if principal is None:
                raise Unauthorized()
            if spec.perm is not None:
                principal.require(spec.perm)
        if raw_params is None:
            raw_params = {}
        if isinstance(raw_params, list):
            raise InvalidParams("params must be an object (named parameters)")
        if not isinstance(raw_params, dict):
            raise InvalidParams("params must be an object")
        try:
            params = spec.params.model_validate(raw_params)
        except ValidationError as exc:
            raise InvalidParams(f"invalid params for {name}", errors=_validation_details(exc)) from None
        ctx = Context(principal=principal, app=self.app)  # type: ignore[arg-type]  # public methods read no principal
        try:
            return spec.fn(ctx, params)
        except IntegrityError as exc:  # the database's own text names tables and columns: logged, not returned
            log.warning("%s: integrity error: %s", name, exc.orig)
            kind = next(
                (k for k in ("unique", "foreign key", "not null", "check") if k in str(exc.orig).lower()), "constraint"
            )
            raise Conflict("the change conflicts with existing data", constraint=kind) from None
