"""Train straight from the registry: PyTorch-ready datasets over a registry revision.

    from fastreg.data import RegistryDataset, RegistryIterableDataset
    ds = RegistryIterableDataset(URL, "use-cases/cats-dogs/data", rev="v2", seed=0)
    for sample in ds:                     # Sample(data=bytes, label=class index, path=str)
        ...

torch is optional: with it installed these are torch.utils.data datasets, for a DataLoader as
they are; without it, plain Python iterables and sequences. See docs/train.md.
"""

from fastreg.data.datasets import RegistryDataset, RegistryIterableDataset, Sample

__all__ = ["RegistryDataset", "RegistryIterableDataset", "Sample"]
