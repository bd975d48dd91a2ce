"""Expert review of pairwise judgments, and the agreement figures it yields."""
