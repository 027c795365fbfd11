"""Configuration: its types, its loading and checks, and what it desires."""
