"""The notebook edge: magics, HTML and widget displays. Thin clients of ``mlops_jupyter.api``."""
