"""Migrations of the runs service's schema."""
