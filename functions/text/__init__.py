"""Building blocks of the text functions: the sentence encoder and BYTES text tensors."""
