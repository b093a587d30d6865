"""offtake: which rare-earth magnet supply contracts to sign, with whom and for how much.

Data flows one way: io -> schema -> data -> model -> solve -> results -> check -> report/cli.
"""

__version__ = "0.1.0"
