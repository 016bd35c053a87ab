"""Migrations of the interactions service's schema."""
