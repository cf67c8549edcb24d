"""Explanation algorithms: pure computation, no I/O.

Each explainer is two steps — ``plan(instance, context)`` builds the rows to score and
``fit(plan, scores)`` turns the predictor's scores into ``Saliencies`` — so the caller
decides how rows travel to the predictor.
"""
