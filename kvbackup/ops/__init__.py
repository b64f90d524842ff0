"""Operations on an open repository core: backup, restore, verify, full verify, diff, stats,
cat. Each depends on the core and the format, never on the facade or another operation's
internals."""
