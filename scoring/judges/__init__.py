"""Judges: endpoints, providers, gateways, local models and embeddings."""
