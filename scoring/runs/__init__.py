"""Scoring runs: responses graded against rubrics, or compared in pairs, by a judge."""
