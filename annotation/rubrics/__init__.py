"""Rubrics: the editor, versions, criteria and the review workflow."""
