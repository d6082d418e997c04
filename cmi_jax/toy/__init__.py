"""Toy models of the paper's theory section, solved in closed form (NumPy, float64)."""
