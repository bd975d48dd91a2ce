"""Rubric analytics: which criteria carry signal, the rubric's signal-to-noise ratio and tail
accuracy, a leaderboard of response sources with confidence, judge biases, and the flags
that send a criterion back to the editor or to the co-author's critique. Computed by a
worker once per finished run and stored; pages only read what is stored."""
