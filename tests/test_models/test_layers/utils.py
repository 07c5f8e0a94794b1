"""Inputs shared by the fusion-layer tests."""
import torch


def random_words(B=2, N=6, L=16, lengths=(4, 6)):
    """(B, N, L) word features and their (B, N) 0/1 attention mask."""
    words = torch.randn(B, N, L)
    mask = torch.zeros(B, N, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    return words, mask
