"""Every picture the suite draws: person overlays and prediction grids, the inspection panels of what the
network computes (paper Fig. 4), and the worst images of a scored run; with one un-normalisation of the
network input (`images.unnormalize`)."""
