"""Offline batch explanation: reading a dataset (``dataset``), the engine for a job
(``job``), the bounded reader → engine → journal pipeline (``runner``), scale-out on Dask
(``dask``) and the HTML report (``report``)."""
