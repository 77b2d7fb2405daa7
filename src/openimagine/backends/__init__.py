"""Model backends; imported only inside worker processes (they import torch)."""
