"""batchml: hyper-parameter searches of PyTorch models on HTCondor and Slurm GPUs.

Importing the package is cheap on purpose (no torch, no dask): the command line
must answer ``--help`` instantly on a login node, and a deployed inference
package needs only ``batchml.inference``.
"""

__version__ = "0.1.0"
