"""Settings: one validated object per process, read from the environment and `.env`."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigError


def _empty_is_unset(value: object) -> object:
    """`KEY=` in .env or the environment means "not set", as for any optional setting."""
    return None if value == "" else value


def _host_list(value: object) -> object:
    """ALLOWED_HOSTS from the environment: a JSON list, or names separated by commas; empty is unset."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    if text.startswith("["):
        return json.loads(text)
    return [name.strip() for name in text.split(",") if name.strip()]


# A name, an IPv4 address, a bracketed IPv6 address, `*.example.org`, or `*` alone (any host).
HOST_PATTERN = r"^(\*|(\*\.)?[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])$"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# An origin as browsers send it: scheme, host and an optional port, no path.
ORIGIN_PATTERN = r"^https?://[A-Za-z0-9_.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$"
WILDCARD_ADDRESSES = ("0.0.0.0", "::")


def _half_of_memory_mb() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(256, total // (2 * 1024 * 1024))


class Settings(BaseSettings):
    """Every knob of the service; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_name: str = Field("tasks.db", min_length=1)
    database_url: Annotated[str | None, BeforeValidator(_empty_is_unset)] = Field(None, pattern=r"^postgres(ql)?://")
    database_poll_only: bool = False
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000)
    task_retention_days: Annotated[float | None, BeforeValidator(_empty_is_unset)] = Field(None, gt=0)

    api_host: str = Field("127.0.0.1", min_length=1)
    api_port: int = Field(8000, ge=1, le=65535)
    allowed_hosts: Annotated[
        list[Annotated[str, Field(pattern=HOST_PATTERN)]] | None, NoDecode, BeforeValidator(_host_list)
    ] = Field(None, min_length=1)
    header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    allow_anonymous: bool = False
    default_max_queued: Annotated[int | None, BeforeValidator(_empty_is_unset)] = Field(None, ge=1)
    rate_limit_per_second: Annotated[int | None, BeforeValidator(_empty_is_unset)] = Field(None, ge=1)
    metrics_token: Annotated[str | None, BeforeValidator(_empty_is_unset)] = Field(None, min_length=16)
    cors_allow_origins: Annotated[
        list[Annotated[str, Field(pattern=ORIGIN_PATTERN)]] | None, NoDecode, BeforeValidator(_host_list)
    ] = Field(None, min_length=1)
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    default_shots: int = Field(1024, ge=1)
    max_shots: int = Field(100_000, ge=1)
    max_circuit_bytes: int = Field(1_000_000, ge=64)
    max_queued_bytes: int = Field(250_000_000, ge=64)
    idempotency_ttl_hours: float = Field(24.0, gt=0)
    max_batch_tasks: int = Field(10_000, ge=1)
    max_batch_bytes: int = Field(50_000_000, ge=1024)
    max_sweep_points: int = Field(1000, ge=1)
    max_observables: int = Field(100, ge=1)
    max_memory_shots: int = Field(100_000, ge=1)

    poll_interval_seconds: float = Field(0.005, gt=0, le=60)
    lease_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    task_timeout_seconds: float = Field(600.0, gt=0)
    worker_max_memory_mb: int = Field(default_factory=_half_of_memory_mb, ge=64)
    simulator_threads: int = Field(0, ge=0)
    max_claim_tasks: int = Field(32, ge=1)
    claim_window_seconds: float = Field(0.1, gt=0, le=3600)
    max_qubits: int = Field(1024, ge=1)
    max_clbits: int = Field(1024, ge=1)
    max_loop_iterations: int = Field(1_000_000, ge=1)
    max_unrolled_operations: int = Field(1_000_000, ge=1)
    shutdown_grace_seconds: float = Field(20.0, ge=0)

    @model_validator(mode="after")
    def _shots_fit(self) -> Settings:
        if self.default_shots > self.max_shots:
            raise ValueError(f"DEFAULT_SHOTS ({self.default_shots}) must not exceed MAX_SHOTS ({self.max_shots})")
        return self

    @property
    def database_label(self) -> str:
        """Where the data lives, for logs: the SQLite file, or the PostgreSQL URL without a password."""
        if not self.database_url:
            return self.database_name
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.database_url)

    @property
    def listens_on_all_addresses(self) -> bool:
        """API_HOST is a wildcard address: clients reach the API under names this process cannot know."""
        return self.api_host in WILDCARD_ADDRESSES

    @property
    def listens_on_loopback(self) -> bool:
        """API_HOST is an address only this machine can reach."""
        return self.api_host in ("localhost", "::1") or self.api_host.startswith("127.")

    @property
    def trusted_hosts(self) -> list[str]:
        """Host header names the API answers: ALLOWED_HOSTS, or the loopback names and API_HOST."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        hosts = list(LOOPBACK_HOSTS)
        own = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        if not self.listens_on_all_addresses and own.lower() not in hosts:
            hosts.append(own.lower())
        return hosts

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read: a circuit at its limit, JSON-escaped, plus room for the rest."""
        return 2 * self.max_circuit_bytes + 64 * 1024


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        # ("allowed_hosts", 0) -> ALLOWED_HOSTS[0]
        key = "".join(f"[{p}]" if isinstance(p, int) else f"_{p}" for p in item["loc"]).lstrip("_").upper()
        key = key or "settings"
        parts.append(f"{key}: {item['msg']} (got {item.get('input')!r})" if item["loc"] else item["msg"])
    return "; ".join(parts)


def load_settings() -> Settings:
    """Build the settings, or raise ConfigError naming each bad key."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


@functools.cache
def get_settings() -> Settings:
    """The process's settings, built once; a bad value stops the process with the key's name."""
    try:
        return load_settings()
    except ConfigError as error:
        print(f"ConfigError: {error}", file=sys.stderr)
        raise SystemExit(2) from None
