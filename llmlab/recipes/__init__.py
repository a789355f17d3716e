"""Recipes: scripts that run a whole job from llmlab's components (the quickstart, experiments)."""
