"""Off-site copies: their results and signed records, packing, fetching back and restore drills."""
