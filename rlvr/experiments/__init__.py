"""The paper's findings as named experiment recipes (configs/experiments/*.yaml): `rlvr experiment`.

runner.py runs a recipe's arms x seeds as ordinary training runs (shared, resumable); report.py
aggregates them over seeds, decides a verdict by a stated rule and writes tables and plots.
"""
