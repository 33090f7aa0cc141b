"""Tenants, users, memberships, teams, roles, authorization (casbin), API tokens, tenant scoping."""
