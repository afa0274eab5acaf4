"""Slurm support: HPC profiles (partitions of a cluster), profile detection from a live cluster, and the
planner that adds Slurm schedulers and `schedule_nodes` actions to a workflow spec."""

from torc.slurm.plan import add_slurm_schedulers, plan_schedulers
from torc.slurm.profiles import HpcPartition, HpcProfile, ProfileRegistry, load_registry

__all__ = ["HpcPartition", "HpcProfile", "ProfileRegistry", "add_slurm_schedulers", "load_registry",
           "plan_schedulers"]
