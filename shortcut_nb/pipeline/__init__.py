"""The pipeline: training, stand-in pretraining, cached runs and features, and the context a notebook builds once.

Everything here turns a typed spec into an artifact under the runs root (keyed by what produced it) or
loads it from there; the core (data, models, metrics, s-scores, ...) does the computing.
"""
