"""Migrations of the identity service's schema."""
