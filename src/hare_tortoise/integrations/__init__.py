"""Hare & Tortoise inside the trainers researchers already use; each module needs its own package (an extra)."""
