"""Parley's natural-language understanding: training data, models, registry and the parse service.

Importing this package is cheap; models load in ``NLUService.warm_up()``.
"""
