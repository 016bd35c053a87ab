"""The identity service: organisations, users, memberships, support bots, agents, worker tokens, agent templates."""
