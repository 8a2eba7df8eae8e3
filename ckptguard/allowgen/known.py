"""What the analyser knows about code outside the analysed sources.

Everything here is a judgement made once by reading CPython's documentation: built-ins and
standard-library callables that, given any arguments a pickle can build, only compute, build
containers or warn.  Anything not here (and not proven from source) is unknown, hence not safe.
"""

from __future__ import annotations

# Built-ins a constructor may call: they compute or build containers.  Not here: getattr /
# setattr / delattr with a computed name (handled by the analyser), eval/exec/compile/open/
# __import__/input/breakpoint/print, map/filter (call an argument), vars/globals/locals.
SAFE_BUILTINS = frozenset({
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "complex", "dict", "divmod", "enumerate", "float", "format", "frozenset", "hasattr", "hash",
    "hex", "id", "int", "isinstance", "issubclass", "iter", "len", "list", "max", "min", "next",
    "object", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "str", "sum", "tuple", "type", "zip", "super", "property", "staticmethod",
    "classmethod", "NotImplemented", "memoryview",
    # exceptions: constructing one runs no code
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "DeprecationWarning",
    "Exception", "FutureWarning", "ImportError", "IndexError", "KeyError", "LookupError",
    "NotImplementedError", "OverflowError", "RuntimeError", "RuntimeWarning", "StopIteration",
    "TypeError", "UserWarning", "ValueError", "Warning", "ZeroDivisionError",
    "PendingDeprecationWarning", "ModuleNotFoundError",
})

# Standard-library callables that only compute, build data or report (warnings, logging).
SAFE_EXTERNAL = frozenset({
    "collections.OrderedDict", "collections.defaultdict", "collections.deque",
    "collections.Counter", "collections.namedtuple", "dataclasses.field", "dataclasses.fields",
    "dataclasses.asdict", "dataclasses.astuple", "dataclasses.replace", "dataclasses.is_dataclass",
    "typing.cast", "typing.TypeVar", "typing.NewType", "typing.get_type_hints",
    "warnings.warn", "logging.getLogger", "math.sqrt", "math.log", "math.exp", "math.ceil",
    "math.floor", "math.isnan", "math.isinf", "math.isfinite", "math.prod", "math.gcd",
    "math.pow", "math.log2", "math.log10", "math.fabs", "math.isclose", "math.inf",
    "operator.index", "numbers.Number", "numbers.Integral", "numbers.Real",
    "enum.auto", "uuid.UUID", "datetime.datetime", "datetime.date", "datetime.timedelta",
    "decimal.Decimal", "fractions.Fraction", "re.escape", "types.SimpleNamespace",
    "types.MappingProxyType", "weakref.ref", "weakref.WeakValueDictionary",
    "weakref.WeakKeyDictionary", "weakref.WeakSet", "threading.Lock", "threading.RLock",
    "itertools.chain", "itertools.product", "itertools.repeat", "itertools.count",
    "itertools.islice", "copy.copy", "functools.wraps", "functools.update_wrapper",
    "functools.partial", "functools.lru_cache", "functools.cache",
    # path arithmetic on strings: no file-system access
    "pathlib.Path", "pathlib.PurePath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
    "pathlib.PosixPath", "os.path.join", "os.path.basename", "os.path.dirname",
    "os.path.splitext", "os.path.split", "os.path.normpath", "os.path.isabs", "os.fspath",
})

# Functions that only describe an object for a message: they read ``__module__``/``__qualname__``/
# ``__name__`` or call the object's ``type()`` (a native Tensor method; a Tensor subclass routes
# it through ``__torch_function__``, which the generator judges for every analysed class), the
# same trust as ``repr``/``str`` of an object (see docs/allowlist.md).  Accepted ONLY where the
# call builds an error that is raised: inside a ``raise`` statement, or in a block (``if`` or
# ``else`` branch, ``except`` handler) whose last statement is ``raise``.  Their arguments are
# judged as usual; elsewhere the functions are judged from source like any other.
MESSAGE_FORMATTERS = frozenset({"torch.typename"})

# Classes of the analysed sources reviewed as safe to construct WITH NO ARGUMENTS (their
# ``__new__`` has an argument-dependent branch static analysis cannot rule out): torch's
# grad-mode context managers.  ``no_grad()`` returns ``super().__new__(cls)`` (the ``cls()(f)``
# branch runs only when a function is passed to decorate), ``__init__`` records nothing but a
# flag, and ``__enter__``/``__exit__`` switch autograd recording off and back.
REVIEWED_NO_ARGUMENTS = frozenset({
    "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.enable_grad",
})

# Logger methods: ``logger.warning(...)`` and friends only format and emit a message.
LOGGER_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception",
                            "critical", "log"})

# Methods of the standard containers (dict, list, set, str, tuple).  Calling one on an argument
# or attribute is accepted: under the strict gate every object a pickle builds is an instance of
# an allowlisted class, and the generator refuses a class that defines one of these names
# unsafely (see classify.container_method_problem).
CONTAINER_METHODS = frozenset({
    "items", "keys", "values", "get", "pop", "popitem", "copy", "update", "setdefault",
    "append", "extend", "insert", "add", "discard", "remove", "clear",
    "startswith", "endswith", "lower", "upper", "strip", "lstrip", "rstrip", "isdigit",
    "isidentifier", "partition", "rpartition", "format", "join",
})

# Container methods that change the container: on module-level state they change the program.
MUTATING_METHODS = frozenset({"pop", "popitem", "update", "setdefault", "append", "extend",
                              "insert", "add", "discard", "remove", "clear"})

# Tensor methods accepted on ``self.X`` when every binding of ``X`` in the class's own code is a
# tensor (see Analyzer.tensor_attribute).  Natively these only fill, copy or describe the
# tensor's data; a Tensor subclass routes them through ``__torch_function__``, judged for every
# analysed class.  If the attribute was restored from a pickle instead (BUILD), the object is,
# under the strict gate, an instance of an allowlisted class: these names are also
# PROTOCOL_METHODS, so an analysed class that defines one unsafely is refused.  Generic names
# (``to``, ``float``, ``type``, ``cpu``) are left out: too many unrelated classes define them;
# so is ``requires_grad_``, which ``torch.nn.Module`` defines as a walk over its parameters, and
# ``size``, which datasets define as a lookup in the data they wrap (as a protocol method it
# refused 77 fairseq datasets).
TENSOR_METHODS = frozenset({
    "zero_", "fill_", "clone", "detach", "detach_", "copy_", "uniform_", "normal_",
    "is_contiguous", "dim", "numel",
})
# Reviewed tensor classes: constructing one from a tensor gives a tensor.
TENSOR_CLASSES = frozenset({
    "torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer",
    "torch.nn.parameter.UninitializedParameter", "torch.nn.parameter.UninitializedBuffer",
})

# Methods other allowlisted code calls on the objects it is given: a class that defines one of
# them unsafely is refused, so that calling them on a pickle-built object stays safe.
# The unpickler itself calls __setitem__ (SETITEMS), append/extend (APPENDS) on built objects,
# and __hash__/__eq__ of an object it uses as a dict key or set member; analysed bodies use
# their arguments through __getitem__/__contains__/__bool__.  Not here: __repr__/__str__/
# __format__, which run only where code formats an object (messages); see docs/allowlist.md.
PROTOCOL_METHODS = CONTAINER_METHODS | {"__torch_function__", "__torch_dispatch__",
                                        "__setitem__", "__iter__", "__len__", "__hash__",
                                        "__eq__", "__getitem__", "__contains__", "__bool__"
                                        } | TENSOR_METHODS

# Class bases outside the sources whose construction and restoration are known safe.
SAFE_BASES = frozenset({
    "builtins.object", "builtins.dict", "builtins.list", "builtins.tuple", "builtins.set",
    "builtins.frozenset", "builtins.str", "builtins.int", "builtins.float", "builtins.bytes",
    "builtins.Exception", "builtins.ValueError", "builtins.RuntimeError", "builtins.TypeError",
    "builtins.KeyError", "builtins.Warning", "builtins.UserWarning",
    "abc.ABC", "typing.Generic", "typing.Protocol", "typing_extensions.Protocol",
    "collections.OrderedDict", "collections.UserDict", "collections.UserList",
    "typing.MutableMapping", "typing.MutableSequence", "collections.abc.MutableSequence",
    "collections.abc.Mapping", "collections.abc.MutableMapping",
    "collections.abc.Sequence", "collections.abc.Iterable", "collections.abc.Set",
    "typing.Mapping", "typing.Sequence", "typing.Iterable", "typing.Dict", "typing.List",
})

ENUM_BASES = frozenset({"enum.Enum", "enum.IntEnum", "enum.StrEnum", "enum.Flag",
                        "enum.IntFlag", "enum.ReprEnum"})
NAMEDTUPLE_BASES = frozenset({"typing.NamedTuple", "typing_extensions.NamedTuple"})
TYPEDDICT_BASES = frozenset({"typing.TypedDict", "typing_extensions.TypedDict"})
DATACLASS_DECORATORS = frozenset({"dataclasses.dataclass"})
# Class decorators that return the class unchanged (or only add comparison methods).
HARMLESS_CLASS_DECORATORS = frozenset({
    "functools.total_ordering", "typing.final", "typing.runtime_checkable",
    "typing_extensions.final", "typing_extensions.runtime_checkable", "enum.unique",
    "typing.type_check_only",
})
HARMLESS_METHOD_DECORATORS = frozenset({
    "builtins.staticmethod", "builtins.classmethod", "builtins.property", "typing.overload",
    "typing.final", "abc.abstractmethod", "functools.wraps", "typing_extensions.override",
    "typing.override", "typing_extensions.deprecated", "functools.lru_cache",
    "functools.cache", "functools.cached_property",
})
SAFE_METACLASSES = frozenset({"abc.ABCMeta", "builtins.type"})

# Why a known-dangerous external name is unsafe, by prefix (longest first wins).
DANGER_PREFIXES: tuple[tuple[str, str], ...] = (
    ("builtins.open", "opens a file"), ("io.", "does file I/O"), ("os.", "calls the os module"),
    ("pathlib.", "touches the file system"), ("shutil.", "touches the file system"),
    ("tempfile.", "touches the file system"), ("glob.", "lists files"),
    ("importlib.", "imports a module by name"), ("builtins.__import__", "imports a module"),
    ("pkgutil.", "imports modules"), ("runpy.", "runs a module"),
    ("builtins.exec", "executes code"), ("builtins.eval", "evaluates code"),
    ("builtins.compile", "compiles code"), ("subprocess.", "starts a process"),
    ("multiprocessing.", "starts processes"), ("ctypes.", "loads native code"),
    ("cffi.", "loads native code"), ("pickle.", "unpickles nested data"),
    ("_pickle.", "unpickles nested data"), ("cloudpickle.", "unpickles nested data"),
    ("dill.", "unpickles nested data"), ("marshal.", "loads marshalled code"),
    ("shelve.", "opens a pickle database"), ("joblib.load", "unpickles a file"),
    ("torch.load", "runs torch.load"), ("numpy.load", "runs numpy.load"),
    ("yaml.load", "runs a YAML loader that builds objects"), ("yaml.unsafe_load", "builds objects"),
    ("socket.", "opens a network socket"), ("urllib.", "touches the network"),
    ("http.", "touches the network"), ("requests.", "touches the network"),
    ("ftplib.", "touches the network"), ("smtplib.", "touches the network"),
    ("webbrowser.", "opens a browser"), ("code.", "runs an interpreter"),
    ("builtins.getattr", "reads an attribute by a computed name"),
    ("builtins.setattr", "sets an attribute by a computed name"),
    ("builtins.map", "calls a function it is given"),
    ("builtins.filter", "calls a function it is given"),
    ("functools.reduce", "calls a function it is given"),
    ("copy.deepcopy", "runs __deepcopy__/__reduce_ex__ hooks of what it copies"),
)


def danger_of(name: str) -> str | None:
    for prefix, why in DANGER_PREFIXES:
        if name == prefix or (prefix.endswith(".") and name.startswith(prefix)):
            return why
    return None

# Methods a library's own unpickler calls on objects it has built (beyond construction and
# restore), by top-level package: joblib's NumpyUnpickler calls ``read()`` on its array wrappers.
LOADER_CALLED_METHODS: dict[str, tuple[str, ...]] = {"joblib": ("read",)}

# Names inside analysed packages that static analysis cannot read (compiled extensions, names
# bound at import time by a loop or a factory), each reviewed by reading its implementation:
# they allocate, compute, or log a usage counter, whatever their arguments.
REVIEWED_NATIVE = frozenset({
    "torch._C._log_api_usage_once",  # increments a usage counter (a no-op without a logger)
    "torch._C._get_tracing_state", "torch._C._has_torch_function",
    "torch._C._has_torch_function_unary", "torch._C._has_torch_function_variadic",
    "torch.overrides.has_torch_function", "torch.overrides.has_torch_function_unary",
    "torch.overrides.has_torch_function_variadic",
    # dispatches to __torch_function__ of the arguments' classes; the generator refuses a class
    # that defines __torch_function__ unsafely (PROTOCOL_METHODS)
    "torch.overrides.handle_torch_function",
    "torch.empty", "torch.zeros", "torch.ones", "torch.full", "torch.tensor",
    "torch.as_tensor", "torch.empty_strided", "torch.empty_like", "torch.zeros_like",
    "torch.ones_like", "torch.arange", "torch.is_tensor", "torch.is_grad_enabled",
    "torch.get_default_dtype", "torch.is_floating_point", "torch.is_complex",
    "torch.device", "torch.Size", "torch.dtype", "torch.finfo", "torch.iinfo",
    # built by _ntuple(n): tuple(itertools.repeat(x, n)) unless x is already iterable
    "torch.nn.modules.utils._single", "torch.nn.modules.utils._pair",
    "torch.nn.modules.utils._triple", "torch.nn.modules.utils._quadruple",
    "torch.nn.modules.utils._ntuple",
    "numpy.array", "numpy.asarray", "numpy.zeros", "numpy.ones", "numpy.empty",
    "numpy.full", "numpy.arange", "numpy.dtype", "numpy.isscalar", "numpy.ndim",
    "numpy.shape", "numpy.issubdtype", "numpy.iinfo", "numpy.finfo", "numpy.prod",
    "numpy.sum", "numpy.sqrt", "numpy.log", "numpy.exp", "numpy.abs", "numpy.max",
    "numpy.min", "numpy.atleast_1d", "numpy.atleast_2d", "numpy.ascontiguousarray",
    "numpy.concatenate", "numpy.stack", "numpy.unique", "numpy.argsort", "numpy.sort",
    "numpy.any", "numpy.all", "numpy.isnan", "numpy.isinf", "numpy.isfinite",
    "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.intp",
    "numpy.bool_",
})
