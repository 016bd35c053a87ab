"""Migrations of the secretproxy service's schema."""
