"""Orchestration: the one place that wires the package's layers into a study.

It prepares data, trains, builds the runtime model, tunes, profiles, runs the controller
tables and the figure pipeline. The layers below (datasets, models, runtime, profiler,
tuner, control, plots) take its results as arguments and never import it.

Named "orchestration" (the design's name for this layer) rather than "study": in the
tuner a *study* is the search's archive (``tuner.open_study``, ``TuneResult.study``).

Modules, in reading order (each imports only the ones before it):

- :mod:`.tasks`: task name -> data splits + trained network (:func:`.tasks.prepare`), the
  tuner on them (:func:`.tasks.tune_task`), :class:`.tasks.TaskSetup` (:func:`.tasks.task_setup`);
- :mod:`.experiments`: the evaluation protocol: traces, the controller suite, controller
  tables, the headline;
- :mod:`.runner`: the resumable step runner;
- :mod:`.summary`: ``summary.md`` / ``summary.csv`` and the README's results block;
- :mod:`.figures`: the pipeline behind ``make figures``, one function per figure.
"""
