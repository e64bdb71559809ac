"""agentbench's version, in a bottom module: reading it does not import the package's root
(which registers the environments with gymnasium, a layer above most readers)."""

__version__ = "0.1.0"
