"""LLM co-authoring of rubrics: jobs, actions and proposals."""
