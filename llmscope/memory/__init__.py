"""Will it fit: the memory report, the transient terms of a forward pass, placement over devices, measuring."""
