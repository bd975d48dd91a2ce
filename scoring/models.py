"""The machine side (judge endpoints, runs, judgments, exports). Imports ``annotation``;
``annotation`` never imports this app."""
