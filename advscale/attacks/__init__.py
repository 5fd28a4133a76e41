"""Attacks shared by training and evaluation: L∞ PGD on CE, CW-margin and TRADES-KL losses."""
