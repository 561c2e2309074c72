"""Hot swap in a running replica: two slots, gates, cooperative background work, control API, watch mode."""
