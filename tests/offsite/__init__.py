"""Off-site copies: packing, authenticity, bounds, fetching back, drills and their health."""
