"""Explanation algorithms: pure computation, no I/O.

An explainer (``interface.Explainer``: ``lime.Lime``, ``kernel_shap.KernelShap``) plans
the rows to score for one instance, through that instance's masker
(``interface.Masker``: ``maskers.numeric.NumericRows``), and fits the predictor's scores
into ``saliencies.Saliencies`` — so the caller decides how rows travel to the predictor.
"""
