"""The identity service's own settings: where support bots' users are created."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.shared.settings import EnvSettings, Prefix, choice, domain, http_url, non_empty, seconds, setting


@dataclass(frozen=True)
class IdentitySettings(EnvSettings):
    # SUPABASE_ is Supabase's prefix too (SUPABASE_ANON_KEY…): only a near miss of ours is an error.
    PREFIXES = (Prefix("SUPABASE_", shared=True), Prefix("SUPPORT_BOT_"))

    # Identity provider of bot users: "local" (the identity schema) or "gotrue" (a GoTrue admin API).
    idp: str = setting("SWITCHBOARD_IDP", choice("local", "gotrue"), "local")
    idp_timeout_seconds: float = setting("SWITCHBOARD_IDP_TIMEOUT_SECONDS", seconds(0.05, 60), 5.0)
    supabase_url: str | None = setting("SUPABASE_URL", http_url)
    supabase_service_role_key: str | None = setting("SUPABASE_SERVICE_ROLE_KEY", non_empty, secret=True)
    support_bot_email_domain: str = setting("SUPPORT_BOT_EMAIL_DOMAIN", domain, "bots.support.internal")
