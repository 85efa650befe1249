"""What a ``.tflite`` file holds, read from the flatbuffer itself, and the AI Edge Quantizer.

Introduced in lesson 09. :func:`tensor_table` and :func:`op_table` read the file with LiteRT's
own flatbuffer schema (``ai_edge_litert.schema_py_generated``), not through an interpreter, so
they see what is *stored*: int4 tensors stay int4 (the interpreter reports them as int8), the
scratch tensors an interpreter adds at run time do not appear, and every operator keeps its
input and output dtypes. :func:`stayed_float` answers "what stayed float, and why" (lesson 10).

The AI Edge Quantizer (``ai_edge_quantizer``, Google's post-training quantizer for LiteRT) works
on a float ``.tflite`` file with *recipes*: :func:`aeq_quantize` runs one of
:data:`AEQ_RECIPES`, optionally keeping chosen operators in float (lessons 09 to 11).
"""

from __future__ import annotations

import gc
import math
import re
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

# Bytes per stored element; int4 packs two values in a byte.
DTYPE_BYTES = {"float32": 4, "float16": 2, "int64": 8, "int32": 4, "int16": 2, "uint8": 1,
               "int8": 1, "bool": 1, "int4": 0.5}

# Recipe name -> (what it does, the TFLiteConverter mode of helpers.tflite it matches).
AEQ_RECIPES = {
    "dynamic_wi8_afp32": ("int8 weights, activations quantized on the fly (integer compute)",
                          "dynamic"),
    "weight_only_wi8_afp32": ("int8 weights dequantized to float (float compute)", "dynamic"),
    "weight_only_wi4_afp32": ("int4 weights dequantized to float (float compute)", "float16"),
    "static_wi8_ai8": ("int8 weights and activations, calibrated", "int8-fallback"),
    "static_wi8_ai16": ("int8 weights, int16 activations, calibrated", "16x8"),
}

BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
# TFLiteConverter's dynamic range leaves weight tensors smaller than this in float.
MIN_WEIGHT_ELEMENTS = 1024
_SHAPE_DTYPES = {"int32", "int64", "bool"}


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _names(enum_class) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items()
            if not key.startswith("_") and isinstance(value, int)}


def _model(content: bytes | bytearray):
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected the .tflite file's bytes, got {type(content).__name__}; "
                        "read a file with path.read_bytes()")
    content = bytes(content)
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError("these bytes are not a .tflite flatbuffer (no 'TFL3' identifier); "
                         "pass what converter.convert() returned")
    return _schema().Model.GetRootAs(content, 0)


def tensor_table(content: bytes) -> list[dict]:
    """Every tensor of the main graph as stored in the file; lesson 11.

    Each row: ``index``, ``name``, ``dtype`` (``"int4"`` included), ``shape``, ``stored``
    (True when the file holds its values: weights, biases, constants), and its quantization
    parameters as arrays: ``scales``, ``zero_points``, ``min``, ``max``, plus
    ``quantized_dimension``.
    """
    model = _model(content)
    types = {k: v.lower() for k, v in _names(_schema().TensorType).items()}
    graph = model.Subgraphs(0)
    rows = []
    for index in range(graph.TensorsLength()):
        tensor = graph.Tensors(index)
        buffer = model.Buffers(tensor.Buffer())
        stored = bool(buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0))
        quant = tensor.Quantization()

        def values(name: str, quant=quant) -> np.ndarray:
            if quant is None or getattr(quant, f"{name}Length")() == 0:
                return np.zeros(0)
            return np.asarray(getattr(quant, f"{name}AsNumpy")())

        rows.append({
            "index": index,
            "name": tensor.Name().decode(),
            "dtype": types.get(tensor.Type(), str(tensor.Type())),
            "shape": tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else (),
            "stored": stored,
            "scales": values("Scale"),
            "zero_points": values("ZeroPoint"),
            "min": values("Min"),
            "max": values("Max"),
            "quantized_dimension": int(quant.QuantizedDimension()) if quant else 0,
        })
    return rows


def op_table(content: bytes) -> list[dict]:
    """Each operator: name, input and output dtypes, weight dtype and kind of compute; lesson 10.

    ``kind`` is ``"boundary"`` (QUANTIZE, DEQUANTIZE), ``"shape"`` (only int32 shape
    arithmetic), ``"integer"`` (int8/int16 activations), ``"hybrid"`` (float activations with
    stored integer weights: dynamic range) or ``"float"``.
    """
    model = _model(content)
    ops = _names(_schema().BuiltinOperator)
    tensors = tensor_table(content)
    graph = model.Subgraphs(0)
    rows = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = ops.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [int(i) for i in op.InputsAsNumpy() if i >= 0] if op.InputsLength() else []
        outputs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        stored = [tensors[i] for i in inputs if tensors[i]["stored"]]
        flowing = [tensors[i] for i in inputs if not tensors[i]["stored"]] + \
                  [tensors[i] for i in outputs]
        data_dtypes = {t["dtype"] for t in flowing} - _SHAPE_DTYPES
        weight = next((t["dtype"] for t in stored if t["dtype"] not in _SHAPE_DTYPES
                       and len(t["shape"]) >= 2), None)
        if name in BOUNDARY_OPS:
            kind = "boundary"
        elif not data_dtypes or all(tensors[i]["dtype"] in _SHAPE_DTYPES for i in outputs):
            kind = "shape"
        elif data_dtypes & {"float32", "float16"}:
            kind = "hybrid" if weight in {"int8", "int4"} else "float"
        else:
            kind = "integer"
        rows.append({
            "index": index, "op": name, "kind": kind, "weight_dtype": weight,
            "inputs": inputs, "outputs": outputs,
            "input_dtypes": [tensors[i]["dtype"] for i in inputs],
            "output_dtypes": [tensors[i]["dtype"] for i in outputs],
            "output_names": [tensors[i]["name"] for i in outputs],
        })
    return rows


def stayed_float(content: bytes) -> list[dict]:
    """The operators that compute in float inside a quantized model, each with why; lesson 10.

    Why is read from the graph around the operator: a DEQUANTIZE of an activation before it
    and a QUANTIZE after it mean the converter found no integer kernel and fell back to float;
    a DEQUANTIZE of a stored weight means weight-only quantization (float compute by design).
    """
    rows = op_table(content)
    tensors = tensor_table(content)
    produced_by = {out: row for row in rows for out in row["outputs"]}
    consumers: dict[int, list[dict]] = {}
    for row in rows:
        for i in row["inputs"]:
            consumers.setdefault(i, []).append(row)
    found = []
    for row in rows:
        if row["kind"] != "float":
            continue
        parents = [produced_by.get(i) for i in row["inputs"]]
        dequantized = [p for p in parents if p is not None and p["op"] == "DEQUANTIZE"]
        from_weight = any(tensors[p["inputs"][0]]["stored"] for p in dequantized)
        from_activation = any(not tensors[p["inputs"][0]]["stored"] for p in dequantized)
        float_weights = [math.prod(tensors[i]["shape"]) for i in row["inputs"]
                         if tensors[i]["stored"] and tensors[i]["dtype"] == "float32"
                         and len(tensors[i]["shape"]) >= 2]
        small_weights = next((n for n in float_weights if n < MIN_WEIGHT_ELEMENTS), 0)
        requantized = any(c["op"] == "QUANTIZE" for o in row["outputs"]
                          for c in consumers.get(o, []))
        if from_activation and requantized:
            why = (f"no integer kernel for {row['op']}: its input is dequantized and its "
                   "output quantized again (float fallback)")
        elif from_weight:
            stored = tensors[dequantized[0]["inputs"][0]]["dtype"]
            why = f"weight-only: the stored {stored} weights are dequantized for a float kernel"
        elif small_weights:
            why = (f"its float weights have {small_weights} elements, fewer than the "
                   f"{MIN_WEIGHT_ELEMENTS:,} below which the converter does not quantize")
        else:
            why = "not quantized: this operator was left in float"
        found.append({**row, "why": why})
    return found


def signature_input(content: bytes) -> tuple[str, str]:
    """The (signature key, input name) of a single-input model, as calibration data needs."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=bytes(content)).get_signature_list()
    if len(signatures) != 1:
        raise ValueError(f"expected one signature, found {sorted(signatures)}")
    key, signature = next(iter(signatures.items()))
    if len(signature["inputs"]) != 1:
        raise ValueError(f"expected one input, signature {key!r} has {signature['inputs']}")
    return key, signature["inputs"][0]


def aeq_calibration_data(content: bytes, images: np.ndarray, samples: int = 100) -> dict:
    """The AI Edge Quantizer's calibration data: {signature: [{input: one image}]}; lesson 10."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError("calibration needs a batch of images, e.g. data.keras_arrays(mnist.calib)[0]")
    key, name = signature_input(content)
    return {key: [{name: image[None]} for image in images[:samples]]}


def _running_min_max(qsv: dict, new: dict) -> dict:
    """Calibration statistics as the converter keeps them: the min and max over all samples."""
    if not qsv:
        return new
    return {"min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


def aeq_quantize(content: bytes, recipe: str, calib_images: np.ndarray | None = None,
                 samples: int = 100, keep_float: Sequence[str] = (),
                 ranges: str = "moving_average") -> bytes:
    """Quantize a float ``.tflite`` file with an AI Edge Quantizer recipe; lesson 09.

    ``recipe`` is a key of :data:`AEQ_RECIPES`. Static recipes calibrate on ``samples`` of
    ``calib_images``; the quantizer's own calibration keeps a moving average (factor 0.95) of
    each sample's min and max (``ranges="moving_average"``), ``ranges="min_max"`` keeps the
    min and max over all samples instead, as the TFLiteConverter does (lesson 10).
    ``keep_float`` lists operator output-tensor names (as in :func:`op_table`) to leave in
    float: selective quantization (lesson 10).
    """
    from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe_manager
    from ai_edge_quantizer import recipe as recipes
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from helpers import tflite

    if recipe not in AEQ_RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(AEQ_RECIPES)}")
    if ranges not in ("moving_average", "min_max"):
        raise ValueError(f"ranges must be 'moving_average' or 'min_max', got {ranges!r}")
    engine = quantizer.Quantizer(bytes(content), getattr(recipes, recipe)())
    for name in keep_float:
        engine.update_quantization_recipe(f"^{re.escape(name)};$",  # scope = "out1;out2;"
                                          qtyping.TFLOperationName.ALL_SUPPORTED,
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
    with tflite.quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental_preserve_all_tensors ... debugging"
        calibration = None
        if engine.need_calibration:
            if calib_images is None:
                raise ValueError(f"recipe {recipe!r} needs calib_images to calibrate on")
            dataset = aeq_calibration_data(content, calib_images, samples)
            if ranges == "moving_average":
                calibration = engine.calibrate(dataset, num_threads=1)
            else:
                manager = recipe_manager.RecipeManager()
                manager.load_quantization_recipe(engine.get_quantization_recipe())
                calib = calibrator.Calibrator(bytes(content), num_threads=1,
                                              qsv_update_func=_running_min_max)
                calib.calibrate(dataset, manager)
                calibration = calib.get_model_qsvs()
        result = engine.quantize(calibration, enable_progress_report=False)
    return bytes(result.quantized_model)


def file_bytes_by_part(content: bytes) -> dict[str, int]:
    """Stored tensor data by dtype, plus everything else in the file ("overhead"); lesson 11."""
    parts: dict[str, int] = {}
    for row in tensor_table(content):
        if row["stored"]:
            n = math.prod(row["shape"]) if row["shape"] else 1
            parts[row["dtype"]] = parts.get(row["dtype"], 0) + math.ceil(
                n * DTYPE_BYTES.get(row["dtype"], 4))
    parts["overhead"] = len(content) - sum(parts.values())
    return parts


def size_from_tensor_table(rows: Iterable[dict]) -> int:
    """A file's size predicted from its tensor table (the reference of lesson 11's exercise).

    The stored tensors' data at their dtype's width (int4: half a byte), plus every tensor's
    quantization parameters: scales, min and max as float32, zero points as int64.
    """
    total = 0
    for row in rows:
        if row["stored"]:
            n = math.prod(row["shape"]) if row["shape"] else 1
            total += math.ceil(n * DTYPE_BYTES[row["dtype"]])
        total += 4 * (len(row["scales"]) + len(row["min"]) + len(row["max"]))
        total += 8 * len(row["zero_points"])
    return total


def summarize_kinds(rows: Iterable[dict]) -> dict[str, int]:
    """How many operators of each kind (see :func:`op_table`); lesson 10."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    return counts


def run_compiled_model(content: bytes, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """One float batch through LiteRT's ``CompiledModel`` API on the CPU; lesson 09.

    The newer LiteRT API: the model is compiled for a hardware accelerator once, and inputs
    and outputs live in ``TensorBuffer`` objects. Its native start-up log lines are silenced.
    """
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.cpu_options import CpuOptions
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import Options

    from helpers.quiet import quiet_native_stderr

    x = np.ascontiguousarray(x, dtype=np.float32)
    with quiet_native_stderr():
        options = Options(hardware_accelerators=HardwareAccelerator.CPU,
                          cpu_options=CpuOptions(num_threads=threads))
        compiled = CompiledModel.from_buffer(bytes(content), options=options)
        key = next(iter(compiled.get_signature_list()))
        (detail,) = compiled.get_input_tensor_details(key).values()
        (out_detail,) = compiled.get_output_tensor_details(key).values()
        if detail["dtype"] != "float32" or list(x.shape) != list(detail["shape"]):
            compiled.close()
            raise ValueError(f"run_compiled_model() feeds one float32 batch of the model's own "
                             f"shape {detail['shape']} ({detail['dtype']}), got {list(x.shape)} "
                             f"({x.dtype})")
        inputs = compiled.create_input_buffers(0)
        outputs = compiled.create_output_buffers(0)
        inputs[0].write(x)
        compiled.run_by_index(0, inputs, outputs)
        result = outputs[0].read(math.prod(out_detail["shape"]), np.float32)
        # Free the buffers, the model and its environment here, so that their native
        # shutdown log lines are silenced too.
        del inputs, outputs
        compiled.close()
        del compiled
        gc.collect()
    return result.reshape(out_detail["shape"])
