"""Motion representation: skeleton, 272-d features, normalisation, synthetic data, BVH, rendering."""
