"""The repository core: an open repository (store, keys, codec) and its read/write
primitives, on which every operation is built."""
