"""The study report: figures (PNG, matplotlib Agg) and one self-contained report.html."""
