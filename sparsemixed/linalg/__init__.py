"""Linear algebra of the profiled objective: the sparse Cholesky factor and the PLS solve."""
