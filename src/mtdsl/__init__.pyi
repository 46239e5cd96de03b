# What type checkers see of ``mtdsl``: the version, and the names __init__.py forwards to mtdsl.api on first use.
from mtdsl.api import Compilation as Compilation
from mtdsl.api import TrainedModel as TrainedModel
from mtdsl.api import TrainResult as TrainResult
from mtdsl.api import compile as compile
from mtdsl.api import load as load
from mtdsl.api import train as train

__version__: str
API: tuple[str, ...]
