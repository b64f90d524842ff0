"""The repository format: envelope, config, key slots, key layout, packs, index, file lists,
snapshot records and chunking. Pure encoding and decoding: no store access. See
``docs/format.md``."""
