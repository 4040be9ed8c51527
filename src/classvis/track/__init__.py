"""Everything MLflow, in small modules; only this package imports MLflow, and its face (this file)
imports nothing, so ``track.settings`` can be read without tracking code.

- ``settings``: ``TrackingSettings`` (the ``tracking`` group), ``absolute_uri``
- ``connect``: opening a store (created and migrated once, under a lock) and the experiment
- ``retry``: every store call retried while the store is busy or unreachable
- ``interrupt``: SIGTERM as ``Terminated``, held back while a store call is in flight
- ``runs``: ``tracked_run`` and ``TrackedRun``, one run's params, tags, metrics and files
- ``liveness``: heartbeats, and RUNNING runs of dead processes marked KILLED
- ``models``, ``model_code``: networks logged as MLflow models from code, weights as safetensors
- ``store``: reading finished runs back (the report, ``classvis export``)

The default store is an embedded SQLite database at one absolute path, so every job of a multirun
lands in the same experiment whatever its working directory. ``MLFLOW_TRACKING_URI`` and
``MLFLOW_EXPERIMENT_NAME`` are honoured through the config (see conf/config.yaml).
"""
