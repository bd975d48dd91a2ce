"""Prompts, responses and preference labels, and how they are imported."""
