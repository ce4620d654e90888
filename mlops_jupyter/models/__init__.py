"""Models: safe serialization, signatures, references like ``name@production``, promotion gates."""
