"""Model kinds: one module per kind plus the registry (core/kinds/registry.py).

Kept empty on purpose: importing the package must not import the registry, so a kind module
(``from core.kinds.base import Kind``) never depends on the registry that lists it.
"""
