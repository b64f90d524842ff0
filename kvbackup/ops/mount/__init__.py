"""kvbackup mount: a snapshot tree (:mod:`.tree`) served through FUSE (:mod:`.fuse`)."""
