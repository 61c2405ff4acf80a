"""Sweeps: every run the notebooks will ask for, planned, submitted through submitit, watched.

A job calls the function a notebook calls (:func:`~.runs.train_or_load`, :func:`~.pretrain.ensure_pretrained`,
:func:`~.mask_runs.ensure_mask`), so after a sweep the notebooks load everything. :func:`plan_runs` expands the sections' run specs into their
dependencies and reads each one's state; :func:`submit` sends one job array per dependency level (on SLURM a
level starts after the one before has ended, ``afterany``: a fine-tuning whose pretraining failed retries it
under its lock); :func:`status` reads states back, failures with their logs. Jobs are
:class:`~submitit.helpers.Checkpointable`: on a timeout or a preemption submitit requeues them and training
resumes from its last epoch checkpoint. Pickles and logs go under ``<runs root>/sweeps/<name>/``::

    planned = plan_runs(specs, root=root)
    print(format_plan(planned))
    submit(planned, root=root, name="table2", executor="slurm", max_parallel=8, slurm=SlurmOptions(partition="gpu"))
    print(format_status(status(specs, root=root, name="table2")))
"""
from .attempts import sweep_dir
from .plan import LEVELS, PlannedRun, SweepStatus, expand, format_plan, format_status, plan_runs, remaining_work, status
from .jobs import RunJob, SlurmOptions, Submission, sbatch_script, slurm_parameters, submit

__all__ = ["LEVELS", "PlannedRun", "RunJob", "SlurmOptions", "Submission", "SweepStatus", "expand", "format_plan",
           "format_status", "plan_runs", "remaining_work", "sbatch_script", "slurm_parameters", "status", "submit", "sweep_dir"]
