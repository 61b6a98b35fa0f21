"""Training data: ROOT files read with uproot, locally or over XRootD.

Stands alone: nothing else in batchml is imported from here, and torch is only
imported by the parts that make tensors.
"""
