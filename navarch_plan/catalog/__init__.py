"""The shipped catalog: abstract instance types, every cloud's GPU facts and prices,
GPU specs, and the offers table."""
