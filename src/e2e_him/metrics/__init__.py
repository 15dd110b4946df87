"""Evaluation metrics: the paper's EMSE/EMAD/REC/ACC (Eq. 20), InstMatt's IMQ, human-matting errors."""
