"""Read an ultralytics ``.pt`` file without ultralytics and without running its pickle.

An ultralytics checkpoint is a torch zip archive whose pickle holds whole module objects
(``ultralytics.nn.tasks.PoseModel``, ``Conv``, ``C3k2``, torch ``Conv2d`` ...). Plain
``torch.load(weights_only=True)`` refuses those, and ``weights_only=False`` would execute
whatever the pickle asks for. This reader unpickles with an allowlist instead:

- every class under ``ultralytics.`` and ``torch.nn.modules.`` becomes an inert ``ModuleStub``
  that only records what the pickle stores in it (``_parameters``, ``_buffers``, ``_modules``
  and plain attributes); no constructor, ``__setstate__`` or method of the real class runs;
- tensors are rebuilt from the archive's storages by this module's own ``_rebuild_tensor``;
- ``OrderedDict``, ``set``, ``torch.Size`` and ``pathlib`` paths map to plain containers / strings;
- ``getattr`` is answered only for a stub class (ultralytics stores ``Detect.forward``) and
  returns an inert name;
- any other global (``os.system``, ``builtins.eval``, ``numpy`` ...) stops the read with one
  ``UnsafeCheckpointError`` line, before anything is called.

``read_ultralytics`` returns the flattened float32 state dict of the stored model and its
metadata; ``erpose.models.ultralytics_map`` maps it onto the zoo.
"""

from __future__ import annotations

import collections
import pickle
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}

#: Module prefixes whose classes are replaced by inert stubs.
_STUB_MODULE_PREFIXES = ("ultralytics.", "torch.nn.modules.")


class UltralyticsCheckpointError(ValueError):
    """A file that is not a readable ultralytics checkpoint (wrong kind, truncated, unsupported)."""


class UnsafeCheckpointError(UltralyticsCheckpointError):
    """The pickle asks for a global outside the allowlist; nothing was executed."""


class ModuleStub:
    """Stands in for any allowlisted class: keeps the pickled state, runs no code of the class."""

    _qualified_name = "ModuleStub"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Called only when a pickle REDUCEs the class itself; the arguments are data, kept as is.
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict state, slot state)
        if not isinstance(state, dict):
            raise UnsafeCheckpointError(f"{self._qualified_name}: unexpected pickled state of type {type(state).__name__}")
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<stub {self._qualified_name}>"

    @property
    def type_name(self) -> str:
        return self._qualified_name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class StubAttribute:
    """What ``getattr(StubClass, name)`` yields inside the pickle: a name, nothing callable."""

    owner: str
    name: str


_STUB_CLASSES: dict[str, type[ModuleStub]] = {}


def _stub_class(module: str, name: str) -> type[ModuleStub]:
    qualified = f"{module}.{name}"
    if qualified not in _STUB_CLASSES:
        _STUB_CLASSES[qualified] = type(name, (ModuleStub,), {"_qualified_name": qualified, "__module__": __name__})
    return _STUB_CLASSES[qualified]


def _safe_getattr(owner: Any, name: Any) -> StubAttribute:
    if not (isinstance(owner, type) and issubclass(owner, ModuleStub) and isinstance(name, str)):
        raise UnsafeCheckpointError(f"getattr on {type(owner).__name__} is not allowed")
    return StubAttribute(owner._qualified_name, name)


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    size, stride = tuple(size), tuple(stride)
    needed = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
    if needed > storage.numel():
        raise UltralyticsCheckpointError(f"tensor of size {size} needs {needed} elements, storage has {storage.numel()}")
    return torch.as_strided(storage, size, stride, offset)


def _rebuild_parameter(data: torch.Tensor, *_ignored: Any) -> torch.Tensor:
    return data


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    return collections.OrderedDict(*args)


def _path_as_string(*parts: Any) -> str:
    return "/".join(str(p) for p in parts)


def _torch_size(*args: Any) -> tuple:
    return tuple(*args)


#: Globals a checkpoint may name, and what the reader hands back for each.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "getattr"): _safe_getattr,
    ("__builtin__", "getattr"): _safe_getattr,
    ("torch", "Size"): _torch_size,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("pathlib", "PosixPath"): _path_as_string,
    ("pathlib", "WindowsPath"): _path_as_string,
    ("pathlib", "Path"): _path_as_string,
}


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _AllowlistUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str, source: str) -> None:
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module.startswith(_STUB_MODULE_PREFIXES) and name.isidentifier() and not name.startswith("_"):
            return _stub_class(module, name)
        raise UnsafeCheckpointError(f"{self._source}: refused to load {module}.{name} (not on the allowlist); nothing was executed")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"{self._source}: unexpected persistent id {pid!r:.80}")
        dtype, key = pid[1].dtype, str(pid[2])
        if key not in self._storages:
            member = f"{self._prefix}/data/{key}"
            try:
                raw = self._archive.read(member)
            except KeyError:
                raise UltralyticsCheckpointError(f"{self._source}: archive lacks {member} (truncated file?)") from None
            itemsize = torch.empty((), dtype=dtype).element_size()
            if len(raw) % itemsize:
                raise UltralyticsCheckpointError(f"{self._source}: storage {key} has {len(raw)} bytes, not a multiple of {itemsize}")
            self._storages[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self._storages[key]


@dataclass
class UltralyticsCheckpoint:
    """What an ultralytics ``.pt`` holds, read without executing it.

    Attributes:
        source: the file.
        task: ``"pose"`` or ``"detect"`` (from the head's class: ``Pose`` or ``Detect``).
        layer_types: class name of every top-level layer, in order (``Conv``, ``C3k2`` ...).
        state_dict: ``{"model.<i>.<...>": float32 tensor}`` of the stored (EMA when present) model,
            persistent buffers included, with ultralytics' own names.
        yaml: the model's architecture dict (``scale``, ``kpt_shape``, ``nc`` ...).
        kpt_shape: ``(K, 2 or 3)`` for pose models, else None.
        names: class names.
        stride: the head strides.
        batchnorm: ``(eps, momentum)`` of the first batch norm.
        metadata: ``version``, ``date``, ``license`` and the key the model came from.
    """

    source: str
    task: str
    layer_types: list[str]
    state_dict: dict[str, torch.Tensor]
    yaml: dict[str, Any]
    kpt_shape: tuple[int, int] | None
    names: dict[int, str]
    stride: tuple[int, ...]
    batchnorm: tuple[float, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> str | None:
        scale = self.yaml.get("scale")
        return str(scale) if scale else None


def is_ultralytics_file(path: str | Path) -> bool:
    """True when ``path`` is a torch zip archive whose pickle imports an ``ultralytics.`` class.

    The pickle's opcodes are scanned (``pickletools.genops``), nothing is unpickled; a string that
    merely mentions ultralytics (a ``converted_from`` path, say) does not count.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                return False
            data = archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile, KeyError, EOFError):
        return False
    if b"ultralytics" not in data:
        return False
    strings: list[str] = []
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL" and str(argument).startswith("ultralytics."):
                return True
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-2].startswith("ultralytics."):
                return True
            if isinstance(argument, str):
                strings.append(argument)
    except (ValueError, EOFError, UnicodeDecodeError):
        return False
    return False


def _flatten(stub: ModuleStub, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = stub.__dict__
    for name, value in (state.get("_parameters") or {}).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for name, value in (state.get("_buffers") or {}).items():
        if isinstance(value, torch.Tensor) and name not in non_persistent:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, ModuleStub):
            _flatten(child, f"{prefix}{name}.", out)


def _first_batchnorm(stub: ModuleStub) -> ModuleStub | None:
    if stub.type_name == "BatchNorm2d":
        return stub
    for child in (stub.__dict__.get("_modules") or {}).values():
        if isinstance(child, ModuleStub) and (found := _first_batchnorm(child)) is not None:
            return found
    return None


def _unpickle(path: Path) -> Any:
    source = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UltralyticsCheckpointError(
            f"{source}: not a torch zip archive (truncated, corrupt, or a legacy non-zip torch file)"
        ) from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise UltralyticsCheckpointError(f"{source}: not a torch checkpoint archive (no single data.pkl)")
        prefix = pickles[0][: -len("/data.pkl")]
        try:
            with archive.open(pickles[0]) as handle:
                return _AllowlistUnpickler(handle, archive, prefix, source).load()
        except UltralyticsCheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError, AttributeError,
                IndexError, KeyError, RuntimeError) as exc:
            raise UltralyticsCheckpointError(f"{source}: unreadable checkpoint pickle ({type(exc).__name__}: {exc})") from None


def read_ultralytics(path: str | Path) -> UltralyticsCheckpoint:
    """Read an ultralytics pose or detection checkpoint with the allowlist unpickler.

    Args:
        path: a ``.pt`` written by ultralytics (a release file, ``best.pt`` or ``last.pt``).

    Returns:
        The stored model's weights (EMA weights when the file has them) as float32, and metadata.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the pickle names a global outside the allowlist (nothing ran).
        UltralyticsCheckpointError: truncated or corrupt, not an ultralytics model, or a head this
            reader does not know.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    data = _unpickle(path)
    try:
        return _checkpoint_from(path, data)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, UltralyticsCheckpointError):
            raise
        raise UltralyticsCheckpointError(f"{path}: unexpected checkpoint structure ({type(exc).__name__}: {exc})") from None


def _checkpoint_from(path: Path, data: Any) -> UltralyticsCheckpoint:
    if not isinstance(data, dict):
        raise UltralyticsCheckpointError(f"{path}: not an ultralytics checkpoint (top level is {type(data).__name__})")
    key = "ema" if isinstance(data.get("ema"), ModuleStub) else "model"
    model = data.get(key)
    if not isinstance(model, ModuleStub):
        raise UltralyticsCheckpointError(f"{path}: not an ultralytics checkpoint (no 'model' or 'ema' module)")
    layers = (model.__dict__.get("_modules") or {}).get("model")
    if not isinstance(layers, ModuleStub):
        raise UltralyticsCheckpointError(f"{path}: {model.type_name} has no 'model' layer list")
    layer_list = [m for m in (layers.__dict__.get("_modules") or {}).values() if isinstance(m, ModuleStub)]
    head = layer_list[-1] if layer_list else None
    task = {"Pose": "pose", "Detect": "detect"}.get(head.type_name if head else "")
    if task is None:
        raise UltralyticsCheckpointError(
            f"{path}: unsupported ultralytics head {head.type_name if head else None!r} (pose and detection models only)"
        )
    state: dict[str, torch.Tensor] = {}
    _flatten(model, "", state)
    state = {k: v.float() if v.is_floating_point() else v.clone() for k, v in state.items()}
    attrs = model.__dict__
    kpt_shape = attrs.get("kpt_shape") or head.__dict__.get("kpt_shape")
    raw_stride = attrs.get("stride")
    stride = tuple(int(s) for s in raw_stride.tolist()) if isinstance(raw_stride, torch.Tensor) else ()
    bn = _first_batchnorm(model)
    batchnorm = (float(bn.__dict__.get("eps", 1e-5)), float(bn.__dict__.get("momentum", 0.1))) if bn else (1e-5, 0.1)
    names = attrs.get("names") or {}
    yaml_dict = attrs.get("yaml") if isinstance(attrs.get("yaml"), dict) else {}
    metadata = {k: data.get(k) for k in ("version", "date", "license", "docs") if isinstance(data.get(k), str)}
    metadata["weights_from"] = key
    return UltralyticsCheckpoint(
        source=str(path),
        task=task,
        layer_types=[m.type_name for m in layer_list],
        state_dict=state,
        yaml=dict(yaml_dict),
        kpt_shape=(int(kpt_shape[0]), int(kpt_shape[1])) if task == "pose" and kpt_shape else None,
        names={int(k): str(v) for k, v in dict(names).items()} if isinstance(names, dict) else {},
        stride=stride,
        batchnorm=batchnorm,
        metadata=metadata,
    )
