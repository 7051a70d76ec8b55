"""``sextant.Module`` for torch: wrap a pipeline's parts, record their calls, serve their runners.

- :mod:`.wrapper`: the transparent ``nn.Module`` wrapper users put into their pipeline;
- :mod:`.part`: its recording and serving (the core's ``Part`` protocol);
- :mod:`.structure`: a call's structure (its tensors taken out) and rebuilding it;
- :mod:`.caches`: transformers' key/value caches in a structure (recorded, rebuilt, filled in place);
- :mod:`.adapter`: a structure as a flat-signature ``nn.Module`` for ``sextant.optimize``.

The wrapper lives in the torch plugin, not the core, because it is an ``nn.Module``: the core must
not need torch. The core drives it through ``sextant.api.Part`` only.
"""

from sextant_torch.pipelines.wrapper import Module

__all__ = ["Module"]
