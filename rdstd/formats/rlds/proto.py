"""The ``tf.train.Example`` message classes, built at run time from a descriptor (no TensorFlow, no protoc).

The wire format is TensorFlow's ``example.proto`` / ``feature.proto``: ``Example{Features features=1}``,
``Features{map<string, Feature> feature=1}``, ``Feature{oneof kind {BytesList bytes_list=1; FloatList
float_list=2; Int64List int64_list=3}}`` with packed repeated values. The messages are declared here in a private
descriptor pool under the package ``rdstd_tfexample`` so they never clash with TensorFlow's or tfds's own copies;
the protobuf runtime (upb, C) then does the parsing.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from rdstd.errors import MissingDependencyError

_PACKAGE = "rdstd_tfexample"


def _protobuf(module: str) -> Any:
    try:
        return importlib.import_module(f"google.protobuf.{module}")
    except ImportError as exc:
        raise MissingDependencyError("protobuf", "rlds", purpose="parse the tf.train.Example records") from exc


@cache
def decode_error() -> type[Exception]:
    """The exception protobuf raises on bytes that are not a valid message."""
    error: type[Exception] = _protobuf("message").DecodeError
    return error


@cache
def example_class() -> Any:
    """The ``Example`` message class (parse with ``example_class().FromString(data)``).

    Raises :class:`~rdstd.errors.MissingDependencyError` naming the ``rlds`` extra when protobuf is missing.
    """
    descriptor_pb2: Any = _protobuf("descriptor_pb2")
    descriptor_pool: Any = _protobuf("descriptor_pool")
    message_factory: Any = _protobuf("message_factory")

    fdp = descriptor_pb2.FileDescriptorProto(name="rdstd_tfexample.proto", package=_PACKAGE, syntax="proto3")
    field = descriptor_pb2.FieldDescriptorProto
    repeated, optional = field.LABEL_REPEATED, field.LABEL_OPTIONAL

    def add_list(name: str, kind: int) -> None:
        msg = fdp.message_type.add(name=name)
        msg.field.add(name="value", number=1, label=repeated, type=kind).options.packed = True

    add_list("BytesList", field.TYPE_BYTES)
    add_list("FloatList", field.TYPE_FLOAT)
    add_list("Int64List", field.TYPE_INT64)
    feature = fdp.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, type_name) in enumerate(
        [("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")], start=1
    ):
        feature.field.add(
            name=name, number=number, label=optional, type=field.TYPE_MESSAGE,
            type_name=f".{_PACKAGE}.{type_name}", oneof_index=0,
        )  # fmt: skip
    features = fdp.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=optional, type=field.TYPE_STRING)
    entry.field.add(name="value", number=2, label=optional, type=field.TYPE_MESSAGE, type_name=f".{_PACKAGE}.Feature")
    features.field.add(
        name="feature", number=1, label=repeated, type=field.TYPE_MESSAGE,
        type_name=f".{_PACKAGE}.Features.FeatureEntry",
    )  # fmt: skip
    example = fdp.message_type.add(name="Example")
    example.field.add(
        name="features", number=1, label=optional, type=field.TYPE_MESSAGE, type_name=f".{_PACKAGE}.Features"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Example"))


def protobuf_backend() -> str:
    """Which protobuf implementation parses (``upb`` is the fast C one; ``python`` is ~6x slower)."""
    return str(_protobuf("internal.api_implementation").Type())
