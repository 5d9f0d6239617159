"""CPU-only speed paths, kept together and out of the model and data code: used by default on CPU,
each with the same math as the plain torch op it replaces (tests check it).

    dropout.py    dropout masks from 16-bit slices of 64-bit draws, by a small C kernel when a compiler
                  is available (torch's CPU dropout draws a double per element)
    attention.py  blocked causal attention with dropout and a hand-written backward (SDPA falls back to
                  an unfused path on CPU whenever dropout is on)
    memory.py     glibc heap thresholds so a training step's freed blocks are reused, not re-faulted
"""
