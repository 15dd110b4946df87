"""Training objective: bipartite matching (Eq. 9-12) and the perception and matting losses (Eq. 13-19)."""
